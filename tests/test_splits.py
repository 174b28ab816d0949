"""Tests of contractive.experiments.splits: each kind of dataset's three sets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from contractive import variations
from contractive.data import DATASETS, OWN_VALIDATION, load_dataset
from contractive.exceptions import DataError
from contractive.experiments import QUICK
from contractive.experiments.splits import load_split


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)


def test_the_data_module_knows_every_variation() -> None:
    # data.OWN_VALIDATION is written out to avoid a circular import; it must not drift.
    assert tuple(variations.VARIATIONS) == OWN_VALIDATION
    assert set(OWN_VALIDATION) <= set(DATASETS)


def test_train_and_test_datasets_keep_the_protocol_sizes_when_they_fit() -> None:
    protocol = dataclasses.replace(QUICK, train_size=1000, val_size=300)
    split = load_split("digits", protocol)
    full = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    assert split.sizes == (1000, 300, 360)
    # The first train_size train, the last val_size validate: disjoint, in file order.
    np.testing.assert_array_equal(split.X_train.numpy(), full.X[:1000])
    np.testing.assert_array_equal(split.X_val.numpy(), full.X[-300:])
    np.testing.assert_array_equal(split.y_test.numpy(), test.y)
    assert split.n_classes == 10
    assert split.name == "digits"
    assert split.n_features == 64


def test_train_and_test_datasets_shrink_mnist_sized_protocols() -> None:
    split = load_split("digits", QUICK)  # 50000 + 10000 asked, 1437 there
    assert split.sizes == (1437 - 1437 // 6, 1437 // 6, 360)
    assert "is more than its 1437 training images" in split.description


def _tiny_rectangles(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = dataclasses.replace(
        variations.VARIATIONS["rectangles"], n_train=40, n_valid=12, n_test=30
    )
    monkeypatch.setitem(variations.VARIATIONS, "rectangles", spec)
    from contractive import imagegen

    monkeypatch.setitem(imagegen.VARIATION_SIZES, "rectangles", (40, 12, 30))


def test_own_splits_are_used(monkeypatch: pytest.MonkeyPatch) -> None:
    _tiny_rectangles(monkeypatch)
    split = load_split("rectangles", dataclasses.replace(QUICK, train_size=30))
    assert split.sizes == (30, 12, 30)
    assert split.n_classes == 2
    assert split.provenance is not None
    assert "regenerated" in split.provenance
    valid = load_dataset("rectangles", split="valid")
    np.testing.assert_array_equal(split.X_val.numpy(), valid.X)
    assert "its own splits" in split.description


def _npz(path: Path, n: int, labels: bool = True) -> Path:
    rng = np.random.default_rng(0)
    arrays = {"X": rng.random((n, 5)).astype(np.float32)}
    if labels:
        arrays["y"] = np.arange(n) % 3
    np.savez(path, **arrays)
    return path


def test_a_user_file_is_shuffled_into_five_one_and_one_sevenths(tmp_path: Path) -> None:
    path = _npz(tmp_path / "mine.npz", 70)
    split = load_split(path, QUICK, label_column="y")
    assert split.sizes == (50, 10, 10)
    # Every row once: the features of row i are unique, so count rows across the three sets.
    rows = np.concatenate([split.X_train.numpy(), split.X_val.numpy(), split.X_test.numpy()])
    assert np.unique(rows, axis=0).shape[0] == 70
    again = load_split(path, QUICK, label_column="y")
    np.testing.assert_array_equal(again.X_test.numpy(), split.X_test.numpy())
    other = load_split(path, dataclasses.replace(QUICK, seed=1), label_column="y")
    assert not np.array_equal(other.X_test.numpy(), split.X_test.numpy())


def test_a_file_without_labels_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "unlabelled.npz", 70, labels=False)
    with pytest.raises(DataError, match=r"unlabelled\.npz has no labels: an experiment needs them"):
        load_split(path, QUICK)


def test_a_file_too_small_to_split_is_refused(tmp_path: Path) -> None:
    path = _npz(tmp_path / "small.npz", 6)
    with pytest.raises(DataError, match=r"small\.npz: the validation set is empty"):
        load_split(path, QUICK, label_column="y")


def test_test_size_keeps_the_first_test_images() -> None:
    protocol = dataclasses.replace(QUICK, train_size=1000, val_size=300, test_size=100)
    split = load_split("digits", protocol)
    test = load_dataset("digits", split="test")
    assert split.sizes == (1000, 300, 100)
    np.testing.assert_array_equal(split.X_test.numpy(), test.X[:100])
    assert split.description.endswith("tested on the first 100 of the 360 test images")
    # 0, and sizes beyond the test set, keep them all.
    for size in (0, 1000):
        assert load_split("digits", dataclasses.replace(protocol, test_size=size)).sizes[2] == 360
