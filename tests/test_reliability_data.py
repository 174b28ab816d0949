"""Reliability, data: every broken data file a user can feed `contractive` gets one clear line.

Each case goes through the command line, where users meet it: exit status 1, exactly one line
on stderr starting with ``contractive: error:``, no traceback, and the key words of the message
pinned. A data error is found before anything is written, so a run folder is never created or
changed by one. The loaders' own messages are tested in tests/test_data.py; docs/reliability.md
lists which test covers which case.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli_error, cli_ok, expect
from contractive import idx
from contractive.cli import main
from contractive.exceptions import DataError

FAST = ("--hidden", "4", "--epochs", "1", "--quiet", "--no-plots", "--device", "cpu")
RUN_FILES = ("checkpoint.safetensors", "config.json", "metrics.jsonl", "model.safetensors")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Work in tmp_path, keep the real dataset cache out, and never touch the network."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(url: str, timeout: float | None = None) -> None:
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)


def unit_data(n: int = 40, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, d)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Bad values and shapes in .npy / .npz / .csv files, through `contractive train`.


def _nan_npy(folder: Path) -> Path:
    X = unit_data()
    X[7, 2] = np.nan
    np.save(folder / "nan.npy", X)
    return folder / "nan.npy"


def _inf_npz(folder: Path) -> Path:
    X = unit_data()
    X[3, 0] = np.inf
    X[9, 1] = -np.inf
    np.savez(folder / "inf.npz", X=X, y=np.arange(40))
    return folder / "inf.npz"


def _nan_csv(folder: Path) -> Path:
    (folder / "nan.csv").write_text("a,b\n0.1,0.2\n0.3,nan\n")
    return folder / "nan.csv"


def _huge_csv(folder: Path) -> Path:
    (folder / "huge.csv").write_text("0.5,1e39\n0.1,0.2\n")
    return folder / "huge.csv"


def _one_dim(folder: Path) -> Path:
    np.save(folder / "flat.npy", np.zeros(12, dtype=np.float32))
    return folder / "flat.npy"


def _five_dim(folder: Path) -> Path:
    np.save(folder / "five.npy", np.zeros((2, 1, 2, 2, 2), dtype=np.float32))
    return folder / "five.npy"


def _zero_rows(folder: Path) -> Path:
    np.save(folder / "rows.npy", np.zeros((0, 5), dtype=np.float32))
    return folder / "rows.npy"


def _zero_features(folder: Path) -> Path:
    np.save(folder / "cols.npy", np.zeros((5, 0), dtype=np.float32))
    return folder / "cols.npy"


def _header_only_csv(folder: Path) -> Path:
    (folder / "head.csv").write_text("a,b,c\n")
    return folder / "head.csv"


def _text_csv(folder: Path) -> Path:
    (folder / "text.csv").write_text("a,b\n0.1,0.2\n0.3,oops\n")
    return folder / "text.csv"


def _ragged_csv(folder: Path) -> Path:
    (folder / "ragged.csv").write_text("0.1,0.2,0.3\n0.4,0.5\n")
    return folder / "ragged.csv"


def _strings_npy(folder: Path) -> Path:
    np.save(folder / "words.npy", np.array([["a", "b"], ["c", "d"]]))
    return folder / "words.npy"


def _one_row(folder: Path) -> Path:
    np.save(folder / "one.npy", unit_data(n=1))
    return folder / "one.npy"


BAD_VALUES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "nan_npy": (
        _nan_npy,
        r"nan\.npy has 1 non-finite value \(NaN, infinity, or too large for float32\); "
        r"the first is in row 7 \(counting from 0\)$",
    ),
    "inf_npz": (_inf_npz, r"inf\.npz has 2 non-finite values .*the first is in row 3 "),
    "nan_csv": (_nan_csv, r"nan\.csv has 1 non-finite value .*the first is in row 1 "),
    "too_large_for_float32": (_huge_csv, r"huge\.csv has 1 non-finite value \(.*too large"),
    "one_dimension": (
        _one_dim,
        r"flat\.npy holds an array of shape \(12,\); expected 2-D \(n_samples, n_features\), "
        r".*: reshape it to \(n_samples, 1\) or \(1, n_features\)$",
    ),
    "five_dimensions": (_five_dim, r"five\.npy holds an array of shape \(2, 1, 2, 2, 2\); exp"),
    "zero_rows": (_zero_rows, r"rows\.npy has no rows \(shape \(0, 5\)\)$"),
    "zero_features": (_zero_features, r"cols\.npy has no features \(shape \(5, 0\)\)$"),
    "csv_header_only": (_header_only_csv, r"head\.csv has no data rows$"),
    "text_in_csv": (
        _text_csv,
        r"text\.csv, line 3, column 2 \('b'\) holds 'oops', which is not a number$",
    ),
    "ragged_csv": (_ragged_csv, r"ragged\.csv, line 2: expected 3 fields, found 2$"),
    "strings_in_npy": (_strings_npy, r"words\.npy holds <U1 values, expected numbers$"),
    "one_sample": (_one_row, r"validation_fraction 0\.1 of 1 samples leaves none to train on$"),
}


@pytest.mark.parametrize("case", list(BAD_VALUES))
def test_bad_values_and_shapes_exit_1_and_write_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str
) -> None:
    build, pattern = BAD_VALUES[case]
    path = build(tmp_path)
    message = cli_error(capsys, "train", "--data", path, "--out", tmp_path / "run", *FAST)
    expect(message, pattern)
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_data_error_itself(tmp_path: Path) -> None:
    path = _nan_npy(tmp_path)
    with pytest.raises(DataError, match=r"nan\.npy has 1 non-finite value"):
        main(["--debug", "train", "--data", str(path), "--out", str(tmp_path / "run"), *FAST])


# ---------------------------------------------------------------------------------------------
# Label columns.


def _labelled_csv(folder: Path, header: bool = True) -> Path:
    rows = "".join(f"{i % 3},{0.1 * (i % 10):.1f},0.5\n" for i in range(30))
    (folder / "lab.csv").write_text(("label,a,b\n" if header else "") + rows)
    return folder / "lab.csv"


@pytest.mark.parametrize(
    ("header", "label", "pattern"),
    [
        (
            True,
            "lbl",
            r"label_column 'lbl' is not a column of .*lab\.csv; its columns are: label, a, b$",
        ),
        (True, "Label", r"label_column 'Label' is not a column of .*its columns are: label, a"),
        (
            False,
            "label",
            r"label_column 'label' is a column name, but .*lab\.csv has no header line: pass a "
            r"column index instead \(0 to 2, or negative from the end\)$",
        ),
        (True, "3", r"label_column 3 is out of range: .*lab\.csv has 3 columns$"),
        (True, "-4", r"label_column -4 is out of range: .*lab\.csv has 3 columns$"),
        (True, "a", r"\(label column 'a'\) holds labels that are not integers \(first in row 1"),
    ],
)
def test_csv_label_column_missing_or_misnamed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, header: bool, label: str, pattern: str
) -> None:
    path = _labelled_csv(tmp_path, header)
    message = cli_error(
        capsys, "train", "--data", path, "--label-column", label, "--out", tmp_path / "r", *FAST
    )
    expect(message, pattern)
    assert not (tmp_path / "r").exists()


def test_npz_label_array_misnamed(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", X=unit_data(), labels=np.arange(40))
    message = cli_error(
        capsys, "train", "--data", "d.npz", "--label-column", "y", "--out", "r", *FAST
    )
    expect(message, r"^d\.npz has no array named 'y'; its arrays are: X, labels$")


def test_npz_label_given_as_index_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    np.savez(tmp_path / "d.npz", X=unit_data(), y=np.arange(40))
    message = cli_error(
        capsys, "train", "--data", "d.npz", "--label-column", "1", "--out", "r", *FAST, status=2
    )
    expect(message, r"^for a \.npz file, label_column names the label array; got the index 1$")


def test_label_column_is_not_trained_on(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = _labelled_csv(tmp_path)
    cli_ok(capsys, "train", "--data", path, "--label-column", "label", "--out", "r", *FAST)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["n_features"] == 2


# ---------------------------------------------------------------------------------------------
# Values outside [0, 1] under binary cross-entropy: an error, or scaling when asked.


def test_values_outside_unit_interval_under_bce(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    X = np.random.default_rng(0).normal(size=(40, 5)).astype(np.float32) * 3
    np.save(tmp_path / "raw.npy", X)
    message = cli_error(capsys, "train", "--data", "raw.npy", "--out", "r", *FAST)
    lo, hi = X.min(), X.max()
    expect(
        message,
        rf"^raw\.npy has values outside \[0, 1\] \(min {lo:.6g}, max {hi:.6g}\), which binary "
        r'cross-entropy cannot take: pass scale="minmax" \(--scale minmax\) or use loss="mse"\.$',
    )
    assert not (tmp_path / "r").exists()
    # Scaling when asked: fitted on the training split, stored, replayed at encode time.
    cli_ok(capsys, "train", "--data", "raw.npy", "--scale", "minmax", "--out", "mm", *FAST)
    out = cli_ok(capsys, "encode", "mm", "--data", "raw.npy", "--out", "codes.npy")
    assert "Wrote codes 40 x 4" in out
    # Or a loss that takes any real values.
    cli_ok(capsys, "train", "--data", "raw.npy", "--loss", "mse", "--out", "mse", *FAST)


def test_images_outside_unit_interval_with_scale_none(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    message = cli_error(capsys, "train", "--data", "digits", "--scale", "none", "--out", "r", *FAST)
    expect(message, r"^digits has values outside \[0, 1\] \(min 0\.0, max 16\.0\)")


# ---------------------------------------------------------------------------------------------
# A feature count at encode/reconstruct time that differs from training.


@pytest.fixture
def tabular_run(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Path:
    np.save(tmp_path / "train.npy", unit_data(d=6))
    cli_ok(capsys, "train", "--data", "train.npy", "--out", "run", *FAST)
    return tmp_path / "run"


@pytest.mark.parametrize("command", ["encode", "reconstruct"])
@pytest.mark.parametrize("shape", [(5, 7), (5, 2, 2)])
def test_feature_count_differs_from_training(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    tabular_run: Path,
    command: str,
    shape: tuple[int, ...],
) -> None:
    np.save(tmp_path / "other.npy", np.zeros(shape, dtype=np.float32))
    message = cli_error(capsys, command, "run", "--data", "other.npy", "--out", "out.npy")
    n = int(np.prod(shape[1:]))
    expect(message, rf"^X has {n} features, but the model in run was trained on 6\.$")
    assert not (tmp_path / "out.npy").exists()


# ---------------------------------------------------------------------------------------------
# MNIST-format IDX files: truncated, corrupt, wrong md5, missing, empty.


def idx_gz(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return gzip.compress(header + arr.astype(np.uint8).tobytes(), mtime=0)


def fake_mnist(folder: Path) -> dict[str, bytes]:
    rng = np.random.default_rng(1)
    files = {
        "train-images-idx3-ubyte.gz": idx_gz(rng.integers(0, 256, (30, 5, 4))),
        "train-labels-idx1-ubyte.gz": idx_gz(rng.integers(0, 10, 30)),
    }
    folder.mkdir(exist_ok=True)
    for name, payload in files.items():
        (folder / name).write_bytes(payload)
    return files


def trust(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make the expected md5s those of the files now in ``folder``."""
    md5s = dict(idx._MD5["mnist"])
    md5s.update({p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in folder.glob("*.gz")})
    monkeypatch.setitem(idx._MD5, "mnist", md5s)


def test_trusted_fake_mnist_trains(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mnist(tmp_path / "idx")
    trust(monkeypatch, tmp_path / "idx")
    cli_ok(capsys, "train", "--data", "mnist", "--data-dir", "idx", "--out", "run", *FAST)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (meta["n_features"], meta["image_shape"]) == (20, [5, 4])


@pytest.mark.parametrize("damage", ["truncated", "corrupt", "empty", "other_file"])
def test_idx_file_with_wrong_md5(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, damage: str
) -> None:
    """The md5 is checked before anything is parsed: a damaged file is named, never read."""
    files = fake_mnist(tmp_path / "idx")
    trust(monkeypatch, tmp_path / "idx")
    path = tmp_path / "idx" / "train-images-idx3-ubyte.gz"
    good = files[path.name]
    damaged = {
        "truncated": good[: len(good) // 2],
        "corrupt": good[:20] + bytes(b ^ 0x5A for b in good[20:40]) + good[40:],
        "empty": b"",
        "other_file": files["train-labels-idx1-ubyte.gz"],
    }[damage]
    path.write_bytes(damaged)
    want = idx._MD5["mnist"][path.name]
    message = cli_error(
        capsys, "train", "--data", "mnist", "--data-dir", "idx", "--out", "r", *FAST
    )
    got = hashlib.md5(damaged).hexdigest()
    expect(
        message,
        rf"^{re.escape(str(Path('idx') / path.name))} has md5 {got}, expected {want}: the file is "
        r"corrupt or not the original; delete it and download again\.$",
    )
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(
    ("damage", "pattern"),
    [
        ("cut_gzip", r"train-images-idx3-ubyte\.gz is not a valid gzip file \("),
        ("flipped_gzip", r"train-images-idx3-ubyte\.gz is not a valid gzip file \("),
        ("not_gzip", r"train-images-idx3-ubyte\.gz is not a valid gzip file \(no gzip header\)$"),
        ("empty", r"train-images-idx3-ubyte\.gz is not a valid gzip file \(no gzip header\)$"),
        (
            "short_payload",
            r"train-images-idx3-ubyte\.gz is truncated: shape \(30, 5, 4\) needs 600 bytes of "
            r"data, found 590$",
        ),
        ("bad_magic", r"train-images-idx3-ubyte\.gz is not an IDX file: its magic number is "),
    ],
)
def test_idx_file_damaged_at_the_source(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    damage: str,
    pattern: str,
) -> None:
    """Damaged files whose md5 matches (a bad mirror, a local copy listed as trusted)."""
    files = fake_mnist(tmp_path / "idx")
    path = tmp_path / "idx" / "train-images-idx3-ubyte.gz"
    good = files[path.name]
    raw = gzip.decompress(good)
    path.write_bytes(
        {
            "cut_gzip": good[: len(good) - 30],
            "flipped_gzip": good[:12] + bytes(b ^ 0xFF for b in good[12:]),
            "not_gzip": b"<html>404 Not Found</html>",
            "empty": b"",
            "short_payload": gzip.compress(raw[:-10], mtime=0),
            "bad_magic": gzip.compress(b"\x01\x02" + raw[2:], mtime=0),
        }[damage]
    )
    trust(monkeypatch, tmp_path / "idx")
    message = cli_error(
        capsys, "train", "--data", "mnist", "--data-dir", "idx", "--out", "r", *FAST
    )
    expect(message, pattern)
    assert not (tmp_path / "r").exists()


def test_mnist_missing_without_network(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    message = cli_error(
        capsys, "train", "--data", "mnist", "--data-dir", "idx", "--out", "r", *FAST
    )
    expect(
        message,
        r"^Could not download train-images-idx3-ubyte\.gz; tried https://\S+ \(<urlopen error "
        r"network is unreachable>\); .*Without network, place the four files in a folder and "
        r"pass --data-dir DIR or set CONTRACTIVE_DATA_DIR\.$",
    )
    cache = tmp_path / "cache" / "contractive" / "mnist"
    assert list(cache.iterdir()) == []  # no partial download left behind


# ---------------------------------------------------------------------------------------------
# Missing and empty files.


@pytest.mark.parametrize("name", ["gone.npy", "gone.npz", "gone.csv"])
def test_missing_data_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    message = cli_error(capsys, "train", "--data", name, "--out", "r", *FAST)
    expect(message, rf"^No such file: {re.escape(name)}$")


@pytest.mark.parametrize("name", ["empty.npy", "empty.npz", "empty.csv"])
def test_empty_data_file(capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_bytes(b"")
    message = cli_error(capsys, "train", "--data", name, "--out", "r", *FAST)
    expect(message, rf"^{re.escape(name)} is empty$")


def test_blank_csv_is_empty(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "blank.csv").write_text("\n \n# exported by a tool\n")
    message = cli_error(capsys, "train", "--data", "blank.csv", "--out", "r", *FAST)
    expect(message, r"^blank\.csv is empty$")


@pytest.mark.parametrize(
    ("name", "payload", "pattern"),
    [
        (
            "cut.npz",
            "half",
            r"^cut\.npz could not be read as a \.npz file: it is not a zip archive \(it is "
            r"truncated, or another format named \.npz\); write it with numpy\.savez$",
        ),
        (
            "text.npy",
            "text",
            r"^text\.npy could not be read as a \.npy file: it does not start with the NumPy "
            r"header \(it is another format named \.npy, or damaged\); write it with numpy\.save$",
        ),
        ("cut.npy", "cut", r"^cut\.npy could not be read as a \.npy file: "),
    ],
)
def test_truncated_or_foreign_numpy_files(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, payload: str, pattern: str
) -> None:
    if payload == "half":
        np.savez(tmp_path / "full.npz", X=unit_data())
        full = (tmp_path / "full.npz").read_bytes()
        (tmp_path / name).write_bytes(full[: len(full) // 2])
    elif payload == "text":
        (tmp_path / name).write_text("0.1,0.2\n0.3,0.4\n")
    else:
        np.save(tmp_path / "full.npy", unit_data())
        (tmp_path / name).write_bytes((tmp_path / "full.npy").read_bytes()[:-64])
    message = cli_error(capsys, "train", "--data", name, "--out", "r", *FAST)
    expect(message, pattern)


# ---------------------------------------------------------------------------------------------
# What survives: a data error never touches an existing run.


def snapshot(run: Path) -> dict[str, bytes]:
    return {name: (run / name).read_bytes() for name in RUN_FILES}


def test_data_error_with_overwrite_keeps_the_old_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tabular_run: Path
) -> None:
    before = snapshot(tabular_run)
    _nan_npy(tmp_path)
    message = cli_error(capsys, "train", "--data", "nan.npy", "--out", "run", "--overwrite", *FAST)
    expect(message, r"^nan\.npy has 1 non-finite value")
    assert snapshot(tabular_run) == before


@pytest.mark.parametrize("change", ["deleted", "nan", "other_data"])
def test_data_error_on_resume_keeps_the_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tabular_run: Path, change: str
) -> None:
    before = snapshot(tabular_run)
    if change == "deleted":
        (tmp_path / "train.npy").unlink()
        pattern = r"^No such file: train\.npy$"
    elif change == "nan":
        X = unit_data(d=6)
        X[0, 0] = np.nan
        np.save(tmp_path / "train.npy", X)
        pattern = r"^train\.npy has 1 non-finite value"
    else:
        np.save(tmp_path / "train.npy", unit_data(d=6, seed=1))
        pattern = r"^The data loaded from 'train\.npy' differ from the data run was trained on"
    message = cli_error(capsys, "train", "--resume", "run", "--epochs", "2", "--quiet")
    expect(message, pattern)
    assert snapshot(tabular_run) == before
