"""Tests of contractive.data: loaders, validation, IDX parsing, download and splitting."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contractive import idx
from contractive.data import (
    DATASETS,
    OWN_VALIDATION,
    Dataset,
    check_unit_interval,
    default_data_dir,
    download_file,
    draw_indices,
    load_dataset,
    parse_label_column,
    read_idx,
    train_validation_split,
)
from contractive.exceptions import ConfigError, DataError

IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B}
IDX_CODES |= {np.dtype(np.int32): 0x0C, np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
TRAIN_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the real cache folder and CONTRACTIVE_DATA_DIR out of every test."""
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` as an IDX file: magic, big-endian uint32 dims, big-endian payload."""
    code = IDX_CODES[arr.dtype]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, arr: np.ndarray, *, gz: bool | None = None) -> Path:
    """Write ``arr`` as IDX to ``path``, gzip-compressed when the name ends in .gz."""
    payload = idx_bytes(arr)
    compress = path.suffix == ".gz" if gz is None else gz
    # mtime=0 makes the gzip bytes, hence their md5, reproducible.
    path.write_bytes(gzip.compress(payload, mtime=0) if compress else payload)
    return path


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def fake_mnist(folder: Path, *, n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    """Write tiny MNIST-format files (5x4 images) into ``folder``; return the arrays."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 5, 4), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 5, 4), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        write_idx(folder / name, arr)
    return arrays


def trust_files(monkeypatch: pytest.MonkeyPatch, folder: Path, dataset: str = "mnist") -> None:
    """Make ``dataset``'s expected md5s those of the files in ``folder``."""
    md5s = {p.name: md5_of(p) for p in folder.iterdir() if p.name.endswith(".gz")}
    monkeypatch.setitem(idx._MD5, dataset, md5s)


class FakeResponse(io.BytesIO):
    """What urlopen returns, reduced to the parts download_file uses."""

    def __init__(self, payload: bytes) -> None:
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def serve(
    monkeypatch: pytest.MonkeyPatch, files: dict[str, bytes]
) -> tuple[list[str], Callable[..., Any]]:
    """Replace urlopen by one that serves ``files`` by URL and fails on any other URL."""
    calls: list[str] = []

    def urlopen(url: str, timeout: float | None = None) -> FakeResponse:
        assert timeout is not None
        assert timeout > 0
        calls.append(url)
        if url not in files:
            raise urllib.error.URLError("no route to host")
        return FakeResponse(files[url])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls, urlopen


# ---------------------------------------------------------------------------------------------
# digits and source resolution


def test_digits_fixed_split() -> None:
    train = load_dataset("digits")
    test = load_dataset("digits", split="test")
    whole = load_dataset("digits", split="all")
    assert (train.n_samples, test.n_samples, whole.n_samples) == (1437, 360, 1797)
    perm = np.random.default_rng(0).permutation(1797)
    assert whole.y is not None
    np.testing.assert_array_equal(train.X, whole.X[perm[:1437]])
    np.testing.assert_array_equal(test.y, whole.y[perm[1437:]])
    for ds in (train, test, whole):
        assert ds.X.dtype == np.float32
        assert ds.X.flags.c_contiguous
        assert ds.y is not None
        assert ds.y.dtype == np.int64
        assert ds.image_shape == (8, 8)
        assert ds.n_features == 64
        assert ds.name == "digits"
    assert train.X.min() == 0.0
    assert train.X.max() == 1.0
    assert set(whole.y.tolist()) == set(range(10))


def test_digits_scales() -> None:
    raw = load_dataset("digits", scale="none")
    auto = load_dataset("digits", scale="auto")
    mm = load_dataset("digits", scale="minmax")
    assert raw.X.max() == 16.0
    np.testing.assert_array_equal(auto.X, raw.X / np.float32(16))
    lo, hi = raw.X.min(axis=0), raw.X.max(axis=0)
    constant = lo == hi
    assert constant.any()  # digits has always-blank corner pixels
    np.testing.assert_array_equal(mm.X[:, constant], 0.0)
    np.testing.assert_array_equal(mm.X[:, ~constant].min(axis=0), 0.0)
    np.testing.assert_array_equal(mm.X[:, ~constant].max(axis=0), 1.0)
    expected = (raw.X[:, ~constant] - lo[~constant]) / (hi - lo)[~constant]
    np.testing.assert_allclose(mm.X[:, ~constant], expected, rtol=1e-6)


def test_known_names_are_case_insensitive() -> None:
    assert DATASETS[:4] == ("digits", "mnist", "fashion-mnist", "cifar-bw")
    assert DATASETS[4:] == OWN_VALIDATION
    assert load_dataset("Digits", split="test").name == "digits"


def test_unknown_source() -> None:
    msg = (
        "Unknown dataset 'foo': expected one of digits, mnist, fashion-mnist, cifar-bw, "
        "mnist-basic, mnist-rot, mnist-bg-rand, mnist-bg-img, mnist-rot-bg-img, rectangles, "
        "rectangles-img, convex, or a path to a .npy, .npz or .csv file."
    )
    with pytest.raises(DataError, match=f"^{re.escape(msg)}$"):
        load_dataset("foo")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    with pytest.raises(DataError, match=f"^No such file: {re.escape(str(path))}$"):
        load_dataset(str(path))


def test_unsupported_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("1,2\n")
    with pytest.raises(DataError, match=r"Unsupported file type '\.txt'.*expected a \.npy"):
        load_dataset(path)


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"split": "val"},
            "The 'split' parameter must be a str among {'train', 'valid', 'test', 'all'}. "
            "Got 'val' instead.",
        ),
        (
            {"scale": "zscore"},
            "The 'scale' parameter must be a str among {'auto', 'minmax', 'none'}. "
            "Got 'zscore' instead.",
        ),
        (
            {"label_column": 1.5},
            "The 'label_column' parameter must be a str (a column name), an int (a column "
            "index) or None. Got 1.5 instead.",
        ),
        ({"label_column": "y"}, "label_column applies to .csv and .npz files"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], pattern: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(pattern)):
        load_dataset("digits", **kwargs)


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_data_dir() == tmp_path / "contractive"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid per the XDG spec
    assert default_data_dir() == Path.home() / ".cache" / "contractive"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_data_dir() == Path.home() / ".cache" / "contractive"


# ---------------------------------------------------------------------------------------------
# Dataset


def test_dataset_coerces_and_subsets() -> None:
    ds = Dataset(np.arange(12.0).reshape(4, 3), y=np.array([3, 1, 2, 0], dtype=np.int32))
    assert ds.X.dtype == np.float32
    assert ds.y is not None
    assert ds.y.dtype == np.int64
    assert repr(ds) == "Dataset(name='array', X=float32(4, 3), y=int64(4,), image_shape=None)"
    sub = ds.subset(np.array([2, 0]))
    np.testing.assert_array_equal(sub.X, [[6, 7, 8], [0, 1, 2]])
    assert sub.y is not None
    assert sub.y.tolist() == [2, 3]
    assert ds.subset([]).n_samples == 0
    assert ds.subset(np.array([True, False, False, True])).n_samples == 2
    assert ds.subset(slice(1, 3)).X.flags.c_contiguous


def test_dataset_rejects_inconsistent_fields() -> None:
    with pytest.raises(DataError, match=r"X must be 2-D"):
        Dataset(np.zeros(3))
    with pytest.raises(DataError, match=r"labels have shape \(2,\), expected \(3,\)"):
        Dataset(np.zeros((3, 2)), y=np.zeros(2, dtype=np.int64))
    with pytest.raises(DataError, match="labels must be integers"):
        Dataset(np.zeros((3, 2)), y=np.zeros(3))
    with pytest.raises(DataError, match=r"image_shape \(2, 2\) does not hold 3 features"):
        Dataset(np.zeros((3, 3)), image_shape=(2, 2))


# ---------------------------------------------------------------------------------------------
# .npy / .npz


def test_npy_round_trip(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).normal(size=(7, 5))
    path = tmp_path / "x.npy"
    np.save(path, arr)
    ds = load_dataset(str(path), split="test")  # split is ignored for files
    np.testing.assert_array_equal(ds.X, arr.astype(np.float32))
    assert ds.X.dtype == np.float32
    assert ds.X.flags.c_contiguous
    assert ds.y is None
    assert ds.image_shape is None
    assert ds.name == str(path)


@pytest.mark.parametrize(("shape", "image_shape"), [((6, 3, 4), (3, 4)), ((6, 2, 3, 4), (2, 3, 4))])
def test_npy_image_stacks_are_flattened(
    tmp_path: Path, shape: tuple[int, ...], image_shape: tuple[int, ...]
) -> None:
    arr = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    np.save(tmp_path / "imgs.npy", arr)
    ds = load_dataset(tmp_path / "imgs.npy")
    assert ds.image_shape == image_shape
    np.testing.assert_array_equal(ds.X, arr.reshape(6, -1).astype(np.float32))
    np.testing.assert_array_equal(ds.X[1].reshape(image_shape), arr[1])


@pytest.mark.parametrize(
    ("arr", "pattern"),
    [
        (np.zeros(5), r"shape \(5,\); expected 2-D .*: reshape it to \(n_samples, 1\)"),
        (np.zeros((2, 1, 1, 1, 1)), r"shape \(2, 1, 1, 1, 1\); expected 2-D"),
        (np.zeros((0, 4)), r"has no rows \(shape \(0, 4\)\)"),
        (np.zeros((3, 0)), r"has no features \(shape \(3, 0\)\)"),
        (np.zeros((2, 2), dtype=complex), "holds complex128 values, expected numbers"),
        (np.array([["a", "b"]]), "holds <U1 values, expected numbers"),
    ],
)
def test_npy_rejects_bad_arrays(tmp_path: Path, arr: np.ndarray, pattern: str) -> None:
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(DataError, match=pattern):
        load_dataset(tmp_path / "bad.npy")


def test_npy_nonfinite_values(tmp_path: Path) -> None:
    arr = np.ones((10, 3))
    arr[4, 1] = np.nan
    arr[7, 0] = np.inf
    arr[7, 2] = -np.inf
    path = tmp_path / "nan.npy"
    np.save(path, arr)
    pattern = rf"^{re.escape(str(path))} has 3 non-finite values .*first is in row 4 "
    with pytest.raises(DataError, match=pattern):
        load_dataset(path)
    with pytest.raises(DataError, match=pattern):
        load_dataset(path, mmap=True)


def test_npy_too_large_for_float32(tmp_path: Path) -> None:
    np.save(tmp_path / "big.npy", np.array([[1.0, 1e300]]))
    with pytest.raises(DataError, match=r"has 1 non-finite value \(.*too large for float32\)"):
        load_dataset(tmp_path / "big.npy")


def test_npy_unreadable(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy could not be read as a \.npy file"):
        load_dataset(tmp_path / "obj.npy")
    np.save(tmp_path / "cut.npy", np.zeros((10, 10)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "cut.npy").read_bytes()[:-40])
    with pytest.raises(DataError, match=r"cut\.npy could not be read"):
        load_dataset(tmp_path / "cut.npy")
    with pytest.raises(DataError, match=r"cut\.npy could not be memory-mapped"):
        load_dataset(tmp_path / "cut.npy", mmap=True)
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.npy is empty$"):
        load_dataset(tmp_path / "empty.npy")


def test_npy_label_column_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 2)))
    with pytest.raises(ConfigError, match=r"label_column does not apply to .*x\.npy"):
        load_dataset(tmp_path / "x.npy", label_column=0)


def test_npy_mmap_keeps_a_memmap(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 256, (9, 4, 5), dtype=np.uint8)
    np.save(tmp_path / "m.npy", arr)
    ds = load_dataset(tmp_path / "m.npy", mmap=True, scale="auto")
    assert isinstance(ds.X, np.memmap)
    assert not ds.X.flags.writeable
    assert ds.X.dtype == np.uint8
    assert ds.X.shape == (9, 20)
    assert ds.image_shape == (4, 5)
    np.testing.assert_array_equal(ds.X, arr.reshape(9, -1))
    sub = ds.subset(np.array([8, 0]))
    assert type(sub.X) is np.ndarray
    assert sub.X.dtype == np.float32
    np.testing.assert_array_equal(sub.X, arr.reshape(9, -1)[[8, 0]])
    assert "X=memmap uint8(9, 20)" in repr(ds)


def test_npy_mmap_refusals(tmp_path: Path) -> None:
    np.save(tmp_path / "m.npy", np.zeros((3, 2), dtype=np.float32))
    with pytest.raises(ConfigError, match=r'scale="minmax" .* cannot be combined with mmap'):
        load_dataset(tmp_path / "m.npy", mmap=True, scale="minmax")
    np.save(tmp_path / "f.npy", np.asfortranarray(np.zeros((3, 2), dtype=np.float32)))
    with pytest.raises(DataError, match=r"f\.npy is stored in Fortran order"):
        load_dataset(tmp_path / "f.npy", mmap=True)
    np.save(tmp_path / "z.npy", np.zeros((0, 2), dtype=np.float32))
    with pytest.raises(DataError, match=r"z\.npy has no rows"):
        load_dataset(tmp_path / "z.npy", mmap=True)


@pytest.mark.parametrize(
    ("arrays", "label_column", "x_key", "y_key"),
    [
        ({"X": "x", "y": "y"}, None, "X", "y"),
        ({"x": "x", "labels": "y"}, None, "x", "labels"),
        ({"data": "x", "target": "y", "extra": "x"}, None, "data", "target"),
        ({"pixels": "x"}, None, "pixels", None),
        ({"images": "x", "labels": "y"}, None, "images", "labels"),
        ({"X": "x", "digit": "y"}, "digit", "X", "digit"),
    ],
)
def test_npz_array_names(
    tmp_path: Path,
    arrays: dict[str, str],
    label_column: str | None,
    x_key: str,
    y_key: str | None,
) -> None:
    rng = np.random.default_rng(0)
    content: dict[str, Any] = {
        k: rng.random((5, 3)) if v == "x" else rng.integers(0, 4, 5) for k, v in arrays.items()
    }
    np.savez(tmp_path / "d.npz", **content)
    ds = load_dataset(tmp_path / "d.npz", label_column=label_column)
    np.testing.assert_array_equal(ds.X, content[x_key].astype(np.float32))
    if y_key is None:
        assert ds.y is None
    else:
        assert ds.y is not None
        assert ds.y.dtype == np.int64
        np.testing.assert_array_equal(ds.y, content[y_key])


def test_npz_image_stack_and_float_labels(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", X=np.ones((4, 2, 3)), y=np.array([[0.0], [1.0], [2.0], [1.0]]))
    ds = load_dataset(tmp_path / "d.npz")
    assert ds.image_shape == (2, 3)
    assert ds.X.shape == (4, 6)
    assert ds.y is not None
    assert ds.y.tolist() == [0, 1, 2, 1]


@pytest.mark.parametrize(
    ("arrays", "label_column", "error", "pattern"),
    [
        ({"a": 2, "b": 2}, None, DataError, r"holds the arrays a, b; expected one named X, x"),
        ({"X": 2}, "lbl", DataError, r"has no array named 'lbl'; its arrays are: X"),
        ({"X": 2, "y": 1}, 0, ConfigError, r"label_column names the label array; got the index 0"),
        ({"X": 2, "y": 3}, None, DataError, r"\(array 'y'\) has shape \(3,\), expected \(4,\)"),
        ({"X": 2, "y": 0}, None, DataError, r"\(array 'y'\) holds labels that are not integers"),
        ({}, None, DataError, r"is empty: it holds no arrays"),
    ],
)
def test_npz_errors(
    tmp_path: Path,
    arrays: dict[str, int],
    label_column: str | int | None,
    error: type[Exception],
    pattern: str,
) -> None:
    shapes: dict[int, Any] = {
        2: np.zeros((4, 2)),
        1: np.arange(4),
        3: np.arange(3),
        0: np.full(4, 0.5),
    }
    np.savez(tmp_path / "d.npz", **{k: shapes[v] for k, v in arrays.items()})
    with pytest.raises(error, match=pattern):
        load_dataset(tmp_path / "d.npz", label_column=label_column)


def test_npz_not_a_zip(tmp_path: Path) -> None:
    (tmp_path / "d.npz").write_bytes(b"PK\x03\x04 but not really a zip archive")
    with pytest.raises(DataError, match=r"d\.npz could not be read as a \.npz file"):
        load_dataset(tmp_path / "d.npz")


# ---------------------------------------------------------------------------------------------
# .csv


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def test_csv_without_header(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "1,2.5,-3\n4, 5 ,6e1\n")
    ds = load_dataset(str(path))
    np.testing.assert_array_equal(ds.X, [[1, 2.5, -3], [4, 5, 60]])
    assert ds.X.dtype == np.float32
    assert ds.y is None
    assert ds.name == str(path)


def test_csv_header_detection_and_comments(tmp_path: Path) -> None:
    text = '\ufeff# exported by a tool\n"a", b ,label\r\n1,2,0\r\n\r\n3,4,1 # trailing note\r\n'
    path = write(tmp_path / "d.csv", text)
    ds = load_dataset(path, label_column="label")
    np.testing.assert_array_equal(ds.X, [[1, 2], [3, 4]])
    assert ds.y is not None
    assert ds.y.tolist() == [0, 1]
    assert ds.y.dtype == np.int64
    assert load_dataset(path).X.shape == (2, 3)


@pytest.mark.parametrize("label_column", [0, -3, "0", "-3", "digit"])
def test_csv_label_column_by_index_or_name(tmp_path: Path, label_column: str | int) -> None:
    path = write(tmp_path / "d.csv", "digit,p1,p2\n7,0.5,1\n3,0,0.25\n")
    ds = load_dataset(path, label_column=label_column)
    np.testing.assert_array_equal(ds.X, [[0.5, 1], [0, 0.25]])
    assert ds.y is not None
    assert ds.y.tolist() == [7, 3]


def test_csv_label_column_last_without_header(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "0.5,1,7\n0,0.25,3\n")
    ds = load_dataset(path, label_column=-1)
    np.testing.assert_array_equal(ds.X, [[0.5, 1], [0, 0.25]])
    assert ds.y is not None
    assert ds.y.tolist() == [7, 3]


@pytest.mark.parametrize(
    ("text", "label_column", "pattern"),
    [
        (
            "a,b,c\n1,2,3\n",
            "label",
            r"label_column 'label' is not a column of .*d\.csv; its columns are: a, b, c$",
        ),
        (
            "1,2,3\n",
            "label",
            r"label_column 'label' is a column name, but .*d\.csv has no header line: pass a "
            r"column index instead \(0 to 2, or negative from the end\)",
        ),
        ("1,2,3\n", 3, r"label_column 3 is out of range: .*d\.csv has 3 columns"),
        ("1,2,3\n", -4, r"label_column -4 is out of range"),
        (
            "a,b\n1,0\n2,0.5\n",
            "b",
            r"d\.csv \(label column 'b'\) holds labels that are not integers \(first in row 1: "
            r"np\.float32\(0\.5\)\)",
        ),
        ("1,nan\n", 1, r"\(label column 1\) holds labels that are not integers \(first in row 0"),
        ("5\n6\n", 0, r"has no features besides the label column 0"),
    ],
)
def test_csv_label_column_errors(
    tmp_path: Path, text: str, label_column: str | int, pattern: str
) -> None:
    path = write(tmp_path / "d.csv", text)
    with pytest.raises(DataError, match=pattern):
        load_dataset(path, label_column=label_column)


def test_csv_lists_at_most_twenty_columns(tmp_path: Path) -> None:
    names = [f"c{i}" for i in range(30)]
    path = write(tmp_path / "d.csv", ",".join(names) + "\n" + ",".join(["1"] * 30) + "\n")
    with pytest.raises(DataError, match=r"c18, c19, \.\.\. \(30 in all\)$"):
        load_dataset(path, label_column="label")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("1,2,3\n4,five,6\n", r"d\.csv, line 2, column 2 holds 'five', which is not a number$"),
        (
            "x,y\n1,2\n\n3,oops\n",
            r"d\.csv, line 4, column 2 \('y'\) holds 'oops', which is not a number$",
        ),
        ("1,2\n3,\n", r"d\.csv, line 2, column 2 is empty$"),
        ("1,2,3\n4,5\n", r"d\.csv, line 2: expected 3 fields, found 2$"),
        ("", r"d\.csv is empty$"),
        ("\n  \n# only a comment\n", r"d\.csv is empty$"),
        ("a,b,c\n", r"d\.csv has no data rows$"),
        ("a,b,c\n1,2\n", r"the header has 3 names but the rows have 2 fields"),
    ],
)
def test_csv_errors(tmp_path: Path, text: str, pattern: str) -> None:
    path = write(tmp_path / "d.csv", text)
    with pytest.raises(DataError, match=pattern):
        load_dataset(path)


def test_csv_nonfinite(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "a,b\n1,2\n3,nan\ninf,4\n")
    with pytest.raises(DataError, match=r"d\.csv has 2 non-finite values .* first is in row 1 "):
        load_dataset(path)


def test_csv_minmax_and_unscaled(tmp_path: Path) -> None:
    path = write(tmp_path / "d.csv", "-1,5,2\n3,5,4\n1,5,10\n")
    np.testing.assert_array_equal(load_dataset(path, scale="auto").X[:, 0], [-1, 3, 1])
    np.testing.assert_array_equal(load_dataset(path, scale="none").X[:, 2], [2, 4, 10])
    mm = load_dataset(path, scale="minmax").X
    np.testing.assert_allclose(mm, np.array([[0, 0, 0], [1, 0, 0.25], [0.5, 0, 1]]))


def test_minmax_stays_in_unit_interval_for_huge_ranges(tmp_path: Path) -> None:
    arr = np.array([[-3e38, 1.0], [3e38, 1.0 + 2**-20], [1e-30, 1.0]], dtype=np.float32)
    np.save(tmp_path / "x.npy", arr)
    X = load_dataset(tmp_path / "x.npy", scale="minmax").X
    assert np.isfinite(X).all()
    assert X.min() == 0.0
    assert X.max() == 1.0
    np.testing.assert_allclose(X[:, 0], [0, 1, 0.5])


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    header=st.booleans(),
)
def test_csv_round_trip_property(rows: int, cols: int, seed: int, header: bool) -> None:
    rng = np.random.default_rng(seed)
    values = rng.normal(scale=1e3, size=(rows, cols)).astype(np.float32)
    labels = rng.integers(-5, 100, rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.csv"
        head = ",".join([f"f{i}" for i in range(cols)] + ["target"]) + "\n" if header else ""
        body = "".join(
            ",".join([repr(float(v)) for v in row] + [str(lab)]) + "\n"
            for row, lab in zip(values, labels, strict=True)
        )
        path.write_text(head + body)
        ds = load_dataset(path, label_column="target" if header else cols)
    np.testing.assert_array_equal(ds.X, values)
    assert ds.y is not None
    np.testing.assert_array_equal(ds.y, labels)


# ---------------------------------------------------------------------------------------------
# check_unit_interval


def test_check_unit_interval() -> None:
    check_unit_interval(np.array([[0.0, 0.25, 1.0]], dtype=np.float32), "ok.csv")
    check_unit_interval(np.zeros((0, 3)), "empty")
    msg = (
        "data.csv has values outside [0, 1] (min -0.5, max 3.0), which binary cross-entropy "
        'cannot take: pass scale="minmax" (--scale minmax) or use loss="mse".'
    )
    with pytest.raises(DataError, match=f"^{re.escape(msg)}$"):
        check_unit_interval(np.array([[-0.5, 1.0], [0.0, 3.0]], dtype=np.float32), "data.csv")
    with pytest.raises(DataError, match=re.escape("(min 0.0, max 255.0)")):
        check_unit_interval(np.array([[0, 255]], dtype=np.uint8), "imgs")


# ---------------------------------------------------------------------------------------------
# train_validation_split


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"), [(10, 0.2, 2), (10, 0.7, 7), (1797, 0.1, 180), (5, 0.0, 0)]
)
def test_train_validation_split(n: int, fraction: float, n_val: int) -> None:
    train, val = train_validation_split(n, fraction, seed=3)
    assert len(val) == n_val
    assert len(train) == n - n_val
    assert train.dtype == np.int64
    assert val.dtype == np.int64
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), np.arange(n))
    assert (np.diff(train) > 0).all()
    assert (np.diff(val) > 0).all()
    again = train_validation_split(n, fraction, seed=3)
    np.testing.assert_array_equal(again[1], val)


def test_train_validation_split_depends_on_seed() -> None:
    a = train_validation_split(100, 0.3, seed=0)[1]
    b = train_validation_split(100, 0.3, seed=1)[1]
    assert not np.array_equal(a, b)
    perm = np.random.default_rng(0).permutation(100)
    np.testing.assert_array_equal(a, np.sort(perm[70:]))


def test_draw_indices() -> None:
    idx = draw_indices(100, 10, seed=4)
    assert idx.shape == (10,)
    assert (np.diff(idx) > 0).all()  # sorted and distinct
    np.testing.assert_array_equal(draw_indices(100, 10, seed=4), idx)
    assert not np.array_equal(draw_indices(100, 10, seed=5), idx)
    np.testing.assert_array_equal(draw_indices(3, 10, seed=0), [0, 1, 2])  # all of them


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3),
        ("-1", -1),
        ("007", 7),
        (2, 2),
        (None, None),
        ("label", "label"),
        ("+3", "+3"),  # left to load_dataset, which reads it as a header name first
        (" 3", " 3"),
        ("--3", "--3"),
        ("3.0", "3.0"),
        ("", ""),
    ],
)
def test_parse_label_column(value: object, expected: object) -> None:
    assert parse_label_column(value) == expected  # type: ignore[arg-type]


def test_label_column_given_as_text_is_an_index(tmp_path: Path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, X=np.zeros((4, 2), dtype=np.float32), y=np.arange(4))
    with pytest.raises(ConfigError, match="label_column names the label array; got the index 1"):
        load_dataset(path, label_column=parse_label_column("1"))


def test_train_validation_split_errors() -> None:
    fraction = r"The 'validation_fraction' parameter must be a float in the range \[0, 1\)\. "
    with pytest.raises(ConfigError, match=fraction + r"Got 1\.0 instead\.$"):
        train_validation_split(10, 1.0, seed=0)
    with pytest.raises(ConfigError, match=fraction + r"Got -0\.1 instead\.$"):
        train_validation_split(10, -0.1, seed=0)
    with pytest.raises(ConfigError, match=fraction + r"Got False instead\.$"):
        train_validation_split(10, False, seed=0)
    with pytest.raises(DataError, match=r"validation_fraction 0\.5 of 1 samples leaves none"):
        train_validation_split(1, 0.5, seed=0)
    with pytest.raises(
        ConfigError, match=r"^The 'n' parameter must be an int in the range \[0, inf\)\. Got -1 "
    ):
        train_validation_split(-1, 0.5, seed=0)


# ---------------------------------------------------------------------------------------------
# IDX


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    dtype=st.sampled_from(sorted(IDX_CODES, key=str)),
    gz=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_read_idx_round_trip(shape: list[int], dtype: np.dtype, gz: bool, seed: int) -> None:
    rng = np.random.default_rng(seed)
    arr = (rng.normal(size=shape) * 100).astype(dtype)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_idx(Path(tmp) / ("a.gz" if gz else "a"), arr)
        back = read_idx(path)
    assert back.dtype == dtype.newbyteorder("=")
    assert back.shape == arr.shape
    assert back.flags.writeable
    np.testing.assert_array_equal(back, arr)


def test_read_idx_raw_file_with_gz_name_is_accepted(tmp_path: Path) -> None:
    arr = np.arange(6, dtype=np.uint8).reshape(2, 3)
    path = write_idx(tmp_path / "x.gz", arr, gz=False)
    np.testing.assert_array_equal(read_idx(path), arr)


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_truncated(tmp_path: Path, gz: bool) -> None:
    raw = idx_bytes(np.zeros((3, 4, 4), dtype=np.uint8))[:-5]
    path = tmp_path / ("x.gz" if gz else "x")
    path.write_bytes(gzip.compress(raw) if gz else raw)
    pattern = rf"^{re.escape(str(path))} is truncated: shape \(3, 4, 4\) needs 48 bytes of data, "
    with pytest.raises(DataError, match=pattern + "found 43$"):
        read_idx(path)


def test_read_idx_header_errors(tmp_path: Path) -> None:
    path = tmp_path / "x"
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)) + b"\x00\x00")
    with pytest.raises(
        DataError, match=r"has trailing bytes: shape \(4,\) needs 4 bytes .*found 6"
    ):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 8, 3, 0, 0, 0, 1]))
    with pytest.raises(DataError, match=r"is truncated: its header needs 16 bytes, found 8"):
        read_idx(path)
    path.write_bytes(b"\x12\x34\x08\x01rest")
    with pytest.raises(DataError, match=r"is not an IDX file: its magic number is 12340801"):
        read_idx(path)
    path.write_bytes(bytes([0, 0, 0x0A, 1, 0, 0, 0, 0]))  # 0x0A is no IDX type code
    with pytest.raises(DataError, match=r"is not an IDX file"):
        read_idx(path)
    path.write_bytes(b"")
    with pytest.raises(DataError, match=r"its magic number is missing"):
        read_idx(path)
    with pytest.raises(DataError, match=r"nope could not be read"):
        read_idx(tmp_path / "nope")


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    good = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)), mtime=0)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match=rf"^{re.escape(str(cut))} is not a valid gzip file"):
        read_idx(cut)
    damaged = tmp_path / "damaged.gz"
    damaged.write_bytes(good[:12] + bytes(b ^ 0xFF for b in good[12:]))
    with pytest.raises(DataError, match=r"damaged\.gz is not a valid gzip file"):
        read_idx(damaged)
    not_gzip = tmp_path / "html.gz"
    not_gzip.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match=r"html\.gz is not a valid gzip file \(no gzip header\)"):
        read_idx(not_gzip)


# ---------------------------------------------------------------------------------------------
# MNIST-format datasets from a folder


@pytest.mark.parametrize("subfolder", ["", "mnist"])
def test_idx_dataset_from_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subfolder: str
) -> None:
    folder = tmp_path / "data" / subfolder
    arrays = fake_mnist(folder)
    trust_files(monkeypatch, folder)
    train = load_dataset("mnist", data_dir=tmp_path / "data", download=False)
    assert train.X.shape == (6, 20)
    assert train.image_shape == (5, 4)
    assert train.name == "mnist"
    np.testing.assert_array_equal(
        train.X, arrays[TRAIN_FILES[0]].reshape(6, -1).astype(np.float32) / np.float32(255)
    )
    assert train.y is not None
    assert train.y.dtype == np.int64
    np.testing.assert_array_equal(train.y, arrays[TRAIN_FILES[1]])
    test = load_dataset("mnist", split="test", data_dir=str(tmp_path / "data"), download=False)
    assert test.X.shape == (4, 20)
    both = load_dataset("mnist", split="all", data_dir=tmp_path / "data", scale="none")
    np.testing.assert_array_equal(both.X[6:], arrays[TEST_FILES[0]].reshape(4, -1))
    assert both.y is not None
    assert both.y.shape == (10,)


def test_idx_dataset_from_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mnist(tmp_path / "env" / "fashion-mnist")
    trust_files(monkeypatch, tmp_path / "env" / "fashion-mnist", "fashion-mnist")
    monkeypatch.setenv("CONTRACTIVE_DATA_DIR", str(tmp_path / "env"))
    ds = load_dataset("fashion-mnist", split="test", download=False)
    assert ds.X.shape == (4, 20)
    assert ds.name == "fashion-mnist"


def test_idx_dataset_only_needs_files_of_its_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mnist(tmp_path)
    trust_files(monkeypatch, tmp_path)
    for name in TRAIN_FILES:
        (tmp_path / name).unlink()
    assert load_dataset("mnist", split="test", data_dir=tmp_path, download=False).n_samples == 4


def test_idx_dataset_wrong_md5(tmp_path: Path) -> None:
    fake_mnist(tmp_path)  # not the real files, so their md5s cannot match
    path = tmp_path / "train-images-idx3-ubyte.gz"
    msg = (
        f"{path} has md5 {md5_of(path)}, expected f68b3c2dcbeaaa9fbdd348bbdeb94873: the file is "
        "corrupt or not the original; delete it and download again."
    )
    with pytest.raises(DataError, match=f"^{re.escape(msg)}$"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_idx_dataset_from_the_other_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_mnist(tmp_path)
    trust_files(monkeypatch, tmp_path, "mnist")
    with pytest.raises(DataError, match=r"is the mnist file of that name, not the fashion-mnist"):
        load_dataset("fashion-mnist", data_dir=tmp_path, download=False)


def test_idx_dataset_count_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mnist(tmp_path)
    write_idx(tmp_path / TRAIN_FILES[1], np.zeros(5, dtype=np.uint8))
    trust_files(monkeypatch, tmp_path)
    with pytest.raises(DataError, match=r"has 6 images but .*train-labels.* has 5 labels"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_idx_dataset_zero_rows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mnist(tmp_path, n_train=0)
    trust_files(monkeypatch, tmp_path)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz has no rows"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_idx_dataset_missing_without_download(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cache = tmp_path / "xdg-cache" / "contractive" / "mnist"
    msg = (
        "mnist file(s) not found: t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; "
        f"looked in {empty}, {empty / 'mnist'} (does not exist), {cache} (does not exist). "
        "Downloading is off (download=False): place the four files in a folder and pass "
        "--data-dir DIR or set CONTRACTIVE_DATA_DIR, or allow the download."
    )
    with pytest.raises(DataError, match=f"^{re.escape(msg)}$"):
        load_dataset("mnist", split="test", data_dir=empty, download=False)


# ---------------------------------------------------------------------------------------------
# downloading


def test_download_file_tries_mirrors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = b"hello mirror" * 1000
    calls, _ = serve(monkeypatch, {"http://b/f": payload})
    dest = tmp_path / "sub" / "f"
    got = download_file(["http://a/f", "http://b/f"], dest, hashlib.md5(payload).hexdigest())
    assert got == dest
    assert dest.read_bytes() == payload
    assert calls == ["http://a/f", "http://b/f"]
    assert sorted(p.name for p in dest.parent.iterdir()) == ["f"]


def test_download_file_bad_md5_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = b"tampered"
    serve(monkeypatch, {"http://a/f": payload, "http://b/f": payload})
    want = "0" * 32
    got = hashlib.md5(payload).hexdigest()
    msg = (
        f"Could not download f; tried http://a/f (got md5 {got}, expected {want}); http://b/f "
        f"(got md5 {got}, expected {want}). Without network, place the four files in a folder "
        "and pass --data-dir DIR or set CONTRACTIVE_DATA_DIR."
    )
    with pytest.raises(DataError, match=f"^{re.escape(msg)}$"):
        download_file(["http://a/f", "http://b/f"], tmp_path / "f", want)
    assert list(tmp_path.iterdir()) == []


def test_download_file_all_mirrors_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serve(monkeypatch, {})
    pattern = (
        r"^Could not download f; tried http://a/f \(<urlopen error no route to host>\)\. "
        r"Without network, place the four files in a folder and pass --data-dir DIR or set "
        r"CONTRACTIVE_DATA_DIR\.$"
    )
    with pytest.raises(DataError, match=pattern):
        download_file("http://a/f", tmp_path / "f", "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_download_file_from_file_url(tmp_path: Path) -> None:
    src = tmp_path / "served" / "blob.bin"
    src.parent.mkdir()
    src.write_bytes(bytes(range(256)) * 100)
    dest = tmp_path / "out" / "blob.bin"
    download_file(src.as_uri(), dest, md5_of(src))
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DataError, match=r"Could not download blob\.bin; tried file://"):
        download_file((tmp_path / "missing").as_uri(), tmp_path / "out" / "blob.bin", "0" * 32)


def test_load_dataset_downloads_into_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "server"
    arrays = fake_mnist(source)
    trust_files(monkeypatch, source)
    files = {
        mirror + p.name: p.read_bytes()
        for p in source.iterdir()
        for mirror in idx._MIRRORS["mnist"]
    }
    calls, _ = serve(monkeypatch, files)
    ds = load_dataset("mnist", split="train")
    cache = tmp_path / "xdg-cache" / "contractive" / "mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(TRAIN_FILES)
    assert calls == [idx._MIRRORS["mnist"][0] + name for name in TRAIN_FILES]
    assert ds.y is not None
    np.testing.assert_array_equal(ds.y, arrays[TRAIN_FILES[1]])
    # A second load finds the cached files and does not touch the network.
    load_dataset("mnist", split="train")
    assert len(calls) == 2


def test_load_dataset_download_with_wrong_md5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "server"
    fake_mnist(source)  # served bytes do not have the real MNIST md5s
    files = {
        mirror + p.name: p.read_bytes()
        for p in source.iterdir()
        for mirror in idx._MIRRORS["mnist"]
    }
    serve(monkeypatch, files)
    with pytest.raises(DataError, match=r"Could not download train-images-idx3-ubyte\.gz; tried "):
        load_dataset("mnist")
    cache = tmp_path / "xdg-cache" / "contractive" / "mnist"
    assert list(cache.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# real MNIST


@pytest.mark.mnist
def test_real_mnist(mnist_dir: Path) -> None:
    train = load_dataset("mnist", data_dir=mnist_dir, download=False)
    test = load_dataset("mnist", split="test", data_dir=mnist_dir, download=False)
    assert train.X.shape == (60000, 784)
    assert test.X.shape == (10000, 784)
    for ds in (train, test):
        assert ds.X.dtype == np.float32
        assert ds.image_shape == (28, 28)
        assert ds.X.min() == 0.0
        assert ds.X.max() == 1.0
        assert ds.y is not None
        assert set(np.unique(ds.y).tolist()) == set(range(10))
    assert train.y is not None
    assert train.y[:5].tolist() == [5, 0, 4, 1, 9]
    check_unit_interval(train.X, train.name)


def test_valid_split_only_where_the_dataset_has_one() -> None:
    with pytest.raises(
        ConfigError,
        match=r"split='valid' applies to the datasets with their own validation split "
        r"\(mnist-basic, .*convex\); digits has train and test only",
    ):
        load_dataset("digits", split="valid")


def test_named_variations_and_cifar_go_to_their_loaders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from contractive import cifar, imagegen, variations

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)
    spec = dataclasses.replace(variations.VARIATIONS["convex"], n_train=8, n_valid=4, n_test=6)
    monkeypatch.setitem(variations.VARIATIONS, "convex", spec)
    monkeypatch.setitem(imagegen.VARIATION_SIZES, "convex", (8, 4, 6))
    sizes = {s: load_dataset("CONVEX", split=s).n_samples for s in ("train", "valid", "test")}
    assert sizes == {"train": 8, "valid": 4, "test": 6}
    ds = load_dataset("convex", split="all", scale="minmax")
    assert ds.name == "convex"
    assert ds.image_shape == (28, 28)
    assert ds.n_samples == 18
    assert ds.provenance is not None
    assert ds.provenance.startswith("regenerated with seed 0")

    # cifar-bw: two records in the binary layout (1 label byte, 3072 pixel bytes).
    folder = tmp_path / "cifar"
    folder.mkdir()
    record = bytes([3]) + bytes(range(256)) * 12
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (folder / name).write_bytes(record * 2)
    ds = load_dataset("cifar-bw", split="test", data_dir=folder, download=False)
    assert ds.X.shape == (2, 1024)
    assert ds.y.tolist() == [3, 3]
    assert ds.image_shape == (32, 32)
    expected = cifar.to_gray(np.frombuffer(record[1:], np.uint8).reshape(1, 3, 32, 32))
    np.testing.assert_array_equal(ds.X[0], expected[0])
