"""``contractive data`` (contractive.cli.datasets): describe a dataset, draw a grid of it.

Nothing here needs MNIST or a network: digits are bundled with scikit-learn, ``rectangles`` is
regenerated without MNIST (shrunk to a few images), and the original and CIFAR files are
written here. The cache folder is moved under ``tmp_path`` for every test.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import cli_error, cli_ok, expect
from contractive import imagegen, variations
from contractive.data import DATASETS
from contractive.idx import default_data_dir

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REGENERATED = "regenerated, comparable to but not the same as the original"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cache folder under tmp_path, and no CONTRACTIVE_DATA_DIR from the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)


@pytest.fixture
def tiny_rectangles(monkeypatch: pytest.MonkeyPatch) -> tuple[int, int, int]:
    """``rectangles`` with 20 train, 10 valid and 30 test images, as files and regenerated."""
    sizes = (20, 10, 30)
    spec = dataclasses.replace(
        variations.VARIATIONS["rectangles"], n_train=sizes[0], n_valid=sizes[1], n_test=sizes[2]
    )
    monkeypatch.setitem(variations.VARIATIONS, "rectangles", spec)
    monkeypatch.setitem(imagegen.VARIATION_SIZES, "rectangles", sizes)
    return sizes


def _json(capsys: pytest.CaptureFixture[str], *argv: object) -> dict[str, object]:
    info = json.loads(cli_ok(capsys, "data", *argv, "--json"))
    assert isinstance(info, dict)
    return info


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    out = cli_ok(capsys, "data", "digits", "--split", "test")
    lines = out.splitlines()
    assert lines[0] == "dataset      digits"
    assert lines[1] == "splits       train 1437, test 360"
    assert lines[2] == "split        test: 360 samples"
    assert lines[3] == "features     64 (images 8x8)"
    assert lines[4].startswith("classes      10: 0 (39), 1 (37), ")
    assert lines[5] == "values       0 .. 1"
    assert lines[6].startswith("provenance   scikit-learn's bundled copy of the UCI optical digits")
    assert len(lines) == 7  # no origin line: not a variation


@pytest.mark.parametrize(("split", "n"), [("train", 1437), ("test", 360), ("all", 1797)])
def test_digits_as_json(capsys: pytest.CaptureFixture[str], split: str, n: int) -> None:
    info = _json(capsys, "digits", "--split", split)
    assert info["name"] == "digits"
    assert info["kind"] == "built-in"
    assert info["split"] == split
    assert info["sizes"] == {"train": 1437, "test": 360}
    assert info["n_samples"] == n
    assert info["n_features"] == 64
    assert info["image_shape"] == [8, 8]
    classes = info["classes"]
    assert isinstance(classes, dict)
    assert list(classes) == [str(d) for d in range(10)]
    assert sum(classes.values()) == n
    assert info["value_range"] == [0.0, 1.0]
    assert "load_digits" in str(info["provenance"])
    assert info["origin"] is None
    assert info["grid"] is None


def test_valid_split_of_a_set_without_one(capsys: pytest.CaptureFixture[str]) -> None:
    message = cli_error(capsys, "data", "digits", "--split", "valid", status=2)
    expect(message, r"^split='valid' applies to the datasets with their own validation split ")


# ---------------------------------------------------------------------------------------------
# the variations: regenerated or original


def test_regenerated_variation(
    capsys: pytest.CaptureFixture[str], tiny_rectangles: tuple[int, int, int]
) -> None:
    out = cli_ok(capsys, "data", "rectangles")
    assert "splits       train 20, valid 10, test 30\n" in out
    assert "split        train: 20 samples\n" in out
    assert "features     784 (images 28x28)\n" in out
    assert "provenance   regenerated with seed 0 (comparable to, but not the same as, " in out
    cache = default_data_dir() / "variations" / "rectangles-seed0.npz"
    assert f"origin       {REGENERATED} (cache: {cache})\n" in out

    info = _json(capsys, "rectangles", "--split", "valid")
    assert info["sizes"] == {"train": 20, "valid": 10, "test": 30}
    assert info["n_samples"] == 10
    classes = info["classes"]
    assert isinstance(classes, dict)
    assert set(classes) <= {"0", "1"}
    assert sum(classes.values()) == 10
    assert str(info["origin"]).startswith(REGENERATED)
    value_range = info["value_range"]
    assert isinstance(value_range, list)
    assert 0.0 <= value_range[0] <= value_range[1] <= 1.0


def test_original_files_are_named(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_rectangles: tuple[int, int, int]
) -> None:
    n_train, n_valid, n_test = tiny_rectangles
    folder = tmp_path / "originals"
    folder.mkdir()
    for name, n in (("rectangles_train.amat", n_train + n_valid), ("rectangles_test.amat", n_test)):
        rows = np.column_stack([np.zeros((n, 784)), np.arange(n) % 2])
        np.savetxt(folder / name, rows, fmt="%g")
    info = _json(capsys, "rectangles", "--data-dir", folder, "--split", "test")
    assert info["sizes"] == {"train": n_train, "valid": n_valid, "test": n_test}
    assert info["classes"] == {"0": 15, "1": 15}
    assert info["value_range"] == [0.0, 0.0]
    assert info["provenance"] == f"original files: {folder / 'rectangles_test.amat'}"
    assert info["origin"] == (
        f"original files at {folder / 'rectangles_train.amat'} and "
        f"{folder / 'rectangles_test.amat'}"
    )
    assert not (default_data_dir() / "variations").exists()  # nothing regenerated


# ---------------------------------------------------------------------------------------------
# CIFAR-bw and files


def test_cifar_bw_from_its_batch_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "cifar"
    folder.mkdir()
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for label, name in enumerate(names):
        # Two records a file: a white image and a black one, both labelled with the file's number.
        white, black = bytes([255] * 3072), bytes(3072)
        (folder / name).write_bytes(bytes([label]) + white + bytes([label]) + black)
    out = cli_ok(capsys, "data", "cifar-bw", "--data-dir", folder)
    assert "splits       train 10, test 2\n" in out
    assert "features     1024 (images 32x32)\n" in out
    expected_classes = "0 airplane (2), 1 automobile (2), 2 bird (2), 3 cat (2), 4 deer (2)"
    assert f"classes      5: {expected_classes}\n" in out
    assert "values       0 .. 1\n" in out
    assert "provenance   CIFAR-10 binary release, gray = 0.299 R + 0.587 G + 0.114 B\n" in out


def test_tabular_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "table.npy"
    np.save(path, np.arange(15, dtype=np.float32).reshape(3, 5))
    out = cli_ok(capsys, "data", path)
    assert out.splitlines() == [
        f"dataset      {path}",
        "rows         3",
        "features     5 (tabular: no image shape)",
        "classes      none (unlabelled)",
        "values       0 .. 14",
        "provenance   a user file, values as stored",
    ]
    info = _json(capsys, path)
    assert info["kind"] == "file"
    assert info["split"] is None
    assert info["sizes"] == {"rows": 3}
    assert info["classes"] is None


# ---------------------------------------------------------------------------------------------
# --grid


def test_grid_writes_a_png(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_rectangles: tuple[int, int, int]
) -> None:
    path = tmp_path / "figures" / "grid.png"
    out = cli_ok(capsys, "data", "rectangles", "--grid", path, "--n", 9, "--seed", 3)
    assert out.endswith(f"Wrote 9 of the 20 train images to {path}\n")
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]  # no temporary file left


def test_grid_with_more_images_than_the_split(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, tiny_rectangles: tuple[int, int, int]
) -> None:
    path = tmp_path / "valid.png"
    out = cli_ok(capsys, "data", "rectangles", "--split", "valid", "--grid", path, "--n", 50)
    assert out.endswith(f"Wrote 10 of the 10 valid images to {path}\n")
    info = _json(capsys, "rectangles", "--split", "valid", "--grid", path)
    assert info["grid"] == str(path)
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_grid_of_tabular_data_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    table = tmp_path / "table.npy"
    np.save(table, np.zeros((4, 3), dtype=np.float32))
    message = cli_error(capsys, "data", table, "--grid", tmp_path / "t.png", status=2)
    assert message == (f"--grid needs images, and {table} is tabular (no image shape); drop --grid")
    assert not (tmp_path / "t.png").exists()


def test_grid_needs_a_png_name(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    message = cli_error(capsys, "data", "digits", "--grid", tmp_path / "grid.jpg", status=2)
    assert message == f"--grid {tmp_path / 'grid.jpg'}: expected a .png file name"


@pytest.mark.parametrize("n", ["0", "-1", "many"])
def test_grid_size_must_be_positive(capsys: pytest.CaptureFixture[str], n: str) -> None:
    message = cli_error(capsys, "data", "digits", "--n", n, status=2)
    expect(message, rf"^argument --n: expected a positive integer, got '{n}'")


# ---------------------------------------------------------------------------------------------
# errors


def test_unknown_name_lists_the_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    message = cli_error(capsys, "data", "mnits", status=1)
    assert message == (
        f"Unknown dataset 'mnits': expected one of {', '.join(DATASETS)}, or a path to a .npy, "
        ".npz or .csv file."
    )


def test_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    message = cli_error(capsys, "data", tmp_path / "gone.csv", status=1)
    assert message == f"No such file: {tmp_path / 'gone.csv'}"
