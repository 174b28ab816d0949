"""Tests for contractive.variations: the datasets of Table 2, original or regenerated."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import types
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import contractive
from contractive import amat, variations
from contractive.exceptions import ConfigError, DataError
from contractive.idx import default_data_dir
from contractive.variations import (
    GENERATOR_VERSION,
    VARIATIONS,
    load_variation,
    variation_status,
)

N_TRAIN, N_VALID, N_TEST = 3, 2, 4
MNIST_NAMES = frozenset(n for n in VARIATIONS if n.startswith("mnist-"))


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache folder under tmp_path, and no CONTRACTIVE_DATA_DIR."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)
    return default_data_dir() / "variations"


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], variations.VariationSpec]:
    """Shrink a set's original splits to 3 train, 2 valid and 4 test rows."""

    def shrink(name: str) -> variations.VariationSpec:
        spec = dataclasses.replace(
            VARIATIONS[name], n_train=N_TRAIN, n_valid=N_VALID, n_test=N_TEST
        )
        monkeypatch.setitem(VARIATIONS, name, spec)
        return spec

    return shrink


def images(n: int, start: int) -> np.ndarray:
    """(n, 784) upright images, each with its own value in its top-left pixel only."""
    X = np.zeros((n, 784), dtype=np.float32)
    X[:, 0] = (start + np.arange(n)) / 100
    return X


def write_amat(path: Path, X: np.ndarray, y: np.ndarray, *, transposed: bool = False) -> Path:
    if transposed:
        X = X.reshape(-1, 28, 28).transpose(0, 2, 1).reshape(len(X), 784)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.column_stack([X, y]), fmt="%.7e", delimiter="   ")
    return path


def write_originals(
    folder: Path, spec: variations.VariationSpec, *, n_train_file: int | None = None
) -> tuple[Path, Path]:
    n = N_TRAIN + N_VALID if n_train_file is None else n_train_file
    k = len(spec.classes)
    train = write_amat(
        folder / spec.train_file, images(n, 0), np.arange(n) % k, transposed=spec.transposed
    )
    test = write_amat(
        folder / spec.test_file,
        images(N_TEST, 50),
        (np.arange(N_TEST) + 1) % k,
        transposed=spec.transposed,
    )
    return train, test


# ---------------------------------------------------------------------------------------------
# The table


def test_the_eight_sets_of_table_2() -> None:
    assert list(VARIATIONS) == [
        "mnist-basic",
        "mnist-rot",
        "mnist-bg-rand",
        "mnist-bg-img",
        "mnist-rot-bg-img",
        "rectangles",
        "rectangles-img",
        "convex",
    ]
    sizes = {n: (s.n_train, s.n_valid, s.n_test) for n, s in VARIATIONS.items()}
    assert sizes["rectangles"] == (1000, 200, 50000)
    assert sizes["convex"] == (6000, 2000, 50000)
    assert {sizes[n] for n in MNIST_NAMES} == {(10000, 2000, 50000)}
    assert sizes["rectangles-img"] == (10000, 2000, 50000)
    assert {n for n, s in VARIATIONS.items() if s.transposed} == {
        "mnist-rot",
        "mnist-bg-rand",
        "mnist-bg-img",
        "mnist-rot-bg-img",
    }
    assert {VARIATIONS[n].classes for n in MNIST_NAMES} == {tuple(range(10))}
    assert VARIATIONS["mnist-rot-bg-img"].paper_name == "bg-img-rot"
    assert VARIATIONS["rectangles-img"].train_file == "rectangles_im_train.amat"
    assert all(
        s.train_file.endswith(".amat") and s.test_file.endswith(".amat")
        for s in VARIATIONS.values()
    )


# ---------------------------------------------------------------------------------------------
# Original files


@pytest.mark.parametrize("subfolder", [False, True], ids=["data_dir", "data_dir-name"])
def test_originals_are_found_and_split(tmp_path: Path, tiny: Callable, subfolder: bool) -> None:
    spec = tiny("mnist-basic")
    folder = tmp_path / "data" / ("mnist-basic" if subfolder else "")
    train_file, test_file = write_originals(folder, spec)
    data_dir = tmp_path / "data"

    train = load_variation("mnist-basic", data_dir=data_dir)
    assert train.X.shape == (N_TRAIN, 784)
    assert train.image_shape == (28, 28)
    assert train.name == "mnist-basic"
    np.testing.assert_allclose(train.X[:, 0], [0.0, 0.01, 0.02])
    assert train.y.tolist() == [0, 1, 2]
    assert train.provenance == f"original files: {train_file}"

    valid = load_variation("mnist-basic", "valid", data_dir=data_dir)  # the last n_valid rows
    np.testing.assert_allclose(valid.X[:, 0], [0.03, 0.04])
    assert valid.y.tolist() == [3, 4]

    test = load_variation("mnist-basic", "test", data_dir=data_dir)
    np.testing.assert_allclose(test.X[:, 0], [0.5, 0.51, 0.52, 0.53])
    assert test.provenance == f"original files: {test_file}"

    everything = load_variation("mnist-basic", "all", data_dir=data_dir)
    np.testing.assert_array_equal(everything.X, np.concatenate([train.X, valid.X, test.X]))
    assert everything.y.tolist() == [0, 1, 2, 3, 4, 1, 2, 3, 4]
    assert everything.provenance == f"original files: {train_file}, {test_file}"


def test_originals_in_contractive_data_dir(
    tmp_path: Path, tiny: Callable, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny("convex")
    write_originals(tmp_path / "env" / "convex", spec)
    monkeypatch.setenv("CONTRACTIVE_DATA_DIR", str(tmp_path / "env"))
    ds = load_variation("convex", "test")
    assert ds.y.tolist() == [1, 0, 1, 0]
    assert str(tmp_path / "env" / "convex" / "convex_test.amat") in ds.provenance


@pytest.mark.parametrize("name", sorted(n for n, s in VARIATIONS.items() if s.transposed))
def test_transposed_sets_come_back_upright(tmp_path: Path, tiny: Callable, name: str) -> None:
    spec = tiny(name)
    # An "L": a bar down the left column and along the bottom row, which no transposition keeps.
    image = np.zeros((28, 28), dtype=np.float32)
    image[:, 0] = 1.0
    image[27, :] = 0.5
    X = np.tile(image.reshape(1, 784), (N_TRAIN + N_VALID, 1))
    write_amat(tmp_path / spec.train_file, X, np.zeros(len(X)), transposed=True)
    write_amat(tmp_path / spec.test_file, X[:N_TEST], np.zeros(N_TEST), transposed=True)
    stored = np.loadtxt(tmp_path / spec.train_file)[0, :784].reshape(28, 28)
    np.testing.assert_array_equal(stored, image.T)  # the file really holds it sideways
    for split in ("train", "valid", "test", "all"):
        ds = load_variation(name, split, data_dir=tmp_path)
        assert ds.X.flags.c_contiguous
        np.testing.assert_array_equal(ds.X.reshape(-1, 28, 28)[-1], image)


def test_untransposed_sets_are_read_as_stored(tmp_path: Path, tiny: Callable) -> None:
    spec = tiny("rectangles")
    image = np.zeros((28, 28), dtype=np.float32)
    image[0, :] = 1.0  # a bar along the top row
    X = np.tile(image.reshape(1, 784), (N_TRAIN + N_VALID, 1))
    write_amat(tmp_path / spec.train_file, X, np.ones(len(X)))
    write_amat(tmp_path / spec.test_file, X[:N_TEST], np.ones(N_TEST))
    ds = load_variation("rectangles", data_dir=tmp_path)
    np.testing.assert_array_equal(ds.X.reshape(-1, 28, 28)[0], image)


def test_row_count_mismatch(tmp_path: Path, tiny: Callable) -> None:
    spec = tiny("rectangles")
    write_originals(tmp_path, spec, n_train_file=4)
    with pytest.raises(
        DataError,
        match=r"rectangles_train\.amat holds 4 rows, expected 5 \(3 train and 2 validation rows "
        r"of rectangles\)$",
    ):
        load_variation("rectangles", "valid", data_dir=tmp_path)
    # The test split does not read the training file.
    assert load_variation("rectangles", "test", data_dir=tmp_path).X.shape == (N_TEST, 784)
    with pytest.raises(DataError, match=r"rectangles_train\.amat holds 4 rows, expected 5"):
        load_variation("rectangles", "all", data_dir=tmp_path)


def test_test_file_row_count_mismatch(tmp_path: Path, tiny: Callable) -> None:
    spec = tiny("rectangles")
    write_originals(tmp_path, spec)
    write_amat(tmp_path / spec.test_file, images(2, 0), np.zeros(2))
    with pytest.raises(
        DataError,
        match=r"rectangles_test\.amat holds 2 rows, expected 4 \(test rows of rectangles\)$",
    ):
        load_variation("rectangles", "test", data_dir=tmp_path)


def test_labels_are_checked_against_the_classes(tmp_path: Path, tiny: Callable) -> None:
    spec = tiny("convex")
    write_originals(tmp_path, spec)
    write_amat(tmp_path / spec.test_file, images(N_TEST, 0), np.array([0, 1, 2, 0]))
    with pytest.raises(
        DataError,
        match=r"convex_test\.amat, line 3, column 785: the label 2\.0000000e\+00 is not one of "
        r"the classes 0, 1$",
    ):
        load_variation("convex", "test", data_dir=tmp_path)


@pytest.mark.parametrize("split", ["train", "test"])
def test_one_original_file_is_an_error(tmp_path: Path, tiny: Callable, split: str) -> None:
    spec = tiny("mnist-rot")
    train_file, test_file = write_originals(tmp_path, spec)
    test_file.unlink()
    with pytest.raises(
        DataError,
        match=rf"^Found {train_file} but not {spec.test_file} \(looked in {tmp_path}, .*\): the "
        r"two original files of mnist-rot go together\. Add mnist_all_rotation_normalized_float"
        r"_test\.amat beside the other, or move mnist_all_rotation_normalized_float_train_valid"
        r"\.amat away to use regenerated data\.$",
    ):
        load_variation("mnist-rot", split, data_dir=tmp_path)


def test_parsed_originals_are_cached(
    tmp_path: Path, tiny: Callable, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = tiny("mnist-bg-img")
    train_file, _ = write_originals(tmp_path / "data", spec)
    monkeypatch.setattr(variations, "_PARSED_CACHE_MIN_BYTES", 0)
    first = load_variation("mnist-bg-img", "all", data_dir=tmp_path / "data")
    md5 = hashlib.md5(train_file.read_bytes()).hexdigest()
    assert (cache / "parsed" / f"{train_file.stem}-{md5}.npz").is_file()
    assert len(list((cache / "parsed").iterdir())) == 2  # no temporary files

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(variations, "read_amat", no_parsing)
    second = load_variation("mnist-bg-img", "all", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(first.X, second.X)
    np.testing.assert_array_equal(first.y, second.y)

    # A damaged copy is parsed again from the text (and replaced).
    monkeypatch.setattr(variations, "read_amat", amat.read_amat)
    (cache / "parsed" / f"{train_file.stem}-{md5}.npz").write_bytes(b"damaged")
    third = load_variation("mnist-bg-img", "all", data_dir=tmp_path / "data")
    np.testing.assert_array_equal(first.X, third.X)
    with np.load(cache / "parsed" / f"{train_file.stem}-{md5}.npz", allow_pickle=False) as z:
        assert z["y"].shape == (N_TRAIN + N_VALID,)


def test_without_originals_and_regeneration(tmp_path: Path) -> None:
    cache_dir = default_data_dir() / "convex"
    with pytest.raises(
        DataError,
        match=r"^The original files of convex were not found: convex_train\.amat and "
        rf"convex_test\.amat; looked in {tmp_path}, {tmp_path}/convex \(does not exist\), "
        rf"{cache_dir} \(does not exist\)\. Unzip them into a folder and pass --data-dir DIR "
        r"\(data_dir=DIR\), or allow regeneration \(regenerate_if_missing=True\)\.$",
    ):
        load_variation("convex", data_dir=tmp_path, regenerate_if_missing=False)


# ---------------------------------------------------------------------------------------------
# Arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"name": "mnist-rotated"},
            r"The 'name' parameter of load_variation must be a str among \{'mnist-basic', "
            r"'mnist-rot', 'mnist-bg-rand', 'mnist-bg-img', 'mnist-rot-bg-img', 'rectangles', "
            r"'rectangles-img', 'convex'\}\. Got 'mnist-rotated' instead\.",
        ),
        (
            {"split": "validation"},
            r"The 'split' parameter of load_variation must be a str among \{'train', 'valid', "
            r"'test', 'all'\}\. Got 'validation' instead\.",
        ),
        (
            {"seed": -1},
            r"The 'seed' parameter of load_variation must be an int in the range \[0, inf\)\. "
            r"Got -1 instead\.",
        ),
    ],
)
def test_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    kwargs = {"name": "convex", **kwargs}
    with pytest.raises(ConfigError, match=message):
        load_variation(**kwargs)  # type: ignore[arg-type]


def test_bad_name_in_status() -> None:
    with pytest.raises(ConfigError, match=r"The 'name' parameter of variation_status must be"):
        variation_status("rect")


# ---------------------------------------------------------------------------------------------
# Regeneration, with a stand-in for contractive.imagegen


class FakeGenerator:
    """Records its calls; returns tiny, seed-dependent splits."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, object]] = []
        self.fail = False

    def __call__(
        self, name: str, seed: int, mnist: tuple[np.ndarray, np.ndarray] | None = None
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        self.calls.append((name, seed, mnist))
        if self.fail:
            raise RuntimeError("generator failed")
        rng = np.random.default_rng(seed)
        k = 10 if name in MNIST_NAMES else 2
        return {
            part: (rng.random((n, 784)).astype(np.float32), rng.integers(0, k, n))
            for part, n in (("train", 3), ("valid", 2), ("test", 4))
        }


@pytest.fixture
def generator(monkeypatch: pytest.MonkeyPatch) -> FakeGenerator:
    """A fake contractive.imagegen module, and a fake MNIST, for the duration of a test."""
    fake = FakeGenerator()
    module = types.ModuleType("contractive.imagegen")
    module.regenerate = fake  # type: ignore[attr-defined]
    module.NEEDS_MNIST = MNIST_NAMES  # type: ignore[attr-defined]
    module.VARIATION_SIZES = {n: (3, 2, 4) for n in VARIATIONS}  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "contractive.imagegen", module)
    monkeypatch.setattr(contractive, "imagegen", module, raising=False)
    return fake


@pytest.fixture
def mnist_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    calls: list[tuple[object, ...]] = []
    fake_mnist = (np.zeros((70000, 28, 28), np.uint8), np.zeros(70000, np.int64))

    def load_idx_images(*args: object) -> tuple[np.ndarray, np.ndarray]:
        calls.append(args)
        return fake_mnist

    monkeypatch.setattr(variations, "load_idx_images", load_idx_images)
    return calls


def test_regenerated_shapes_are_cached(
    generator: FakeGenerator, cache: Path, tmp_path: Path
) -> None:
    ds = load_variation("rectangles", data_dir=tmp_path, seed=3)
    assert ds.X.shape == (3, 784)
    assert ds.image_shape == (28, 28)
    assert ds.name == "rectangles"
    assert ds.provenance == (
        "regenerated with seed 3 (comparable to, but not the same as, the original rect files "
        "of Larochelle et al., 2007)"
    )
    assert generator.calls == [("rectangles", 3, None)]
    npz, record = cache / "rectangles-seed3.npz", cache / "rectangles-seed3.json"
    assert sorted(p.name for p in cache.iterdir()) == [record.name, npz.name]
    meta = json.loads(record.read_text())
    assert meta["name"] == "rectangles"
    assert meta["seed"] == 3
    assert meta["generator_version"] == GENERATOR_VERSION
    assert meta["md5"] == hashlib.md5(npz.read_bytes()).hexdigest()
    assert meta["sizes"] == {"train": 3, "valid": 2, "test": 4}
    assert meta["created"].endswith("Z")
    with np.load(npz, allow_pickle=False) as z:
        assert sorted(z.files) == sorted(
            f"{v}_{p}" for v in "Xy" for p in ("train", "valid", "test")
        )

    # The other splits come from the cache, in order.
    splits = {s: load_variation("rectangles", s, seed=3) for s in ("train", "valid", "test", "all")}
    assert len(generator.calls) == 1
    np.testing.assert_array_equal(splits["train"].X, ds.X)
    np.testing.assert_array_equal(
        splits["all"].X, np.concatenate([splits[s].X for s in ("train", "valid", "test")])
    )
    expected = generator("rectangles", 3)
    np.testing.assert_array_equal(splits["test"].X, expected["test"][0])
    np.testing.assert_array_equal(splits["valid"].y, expected["valid"][1])


def test_regenerated_digits_use_mnist(
    generator: FakeGenerator, mnist_calls: list, tmp_path: Path
) -> None:
    ds = load_variation("mnist-rot", "test", data_dir=tmp_path, download=False)
    assert mnist_calls == [("mnist", "all", tmp_path, False)]
    (_, _, mnist) = generator.calls[0]
    assert isinstance(mnist, tuple)
    assert mnist[0].shape == (70000, 28, 28)
    assert ds.provenance == (
        "regenerated from MNIST with seed 0 (comparable to, but not the same as, the original "
        "rot files of Larochelle et al., 2007)"
    )
    load_variation("mnist-rot", "train", data_dir=tmp_path)
    assert len(mnist_calls) == 1
    assert len(generator.calls) == 1


def test_seeds_are_cached_apart(generator: FakeGenerator, cache: Path) -> None:
    a = load_variation("convex", seed=0)
    b = load_variation("convex", seed=1)
    assert not np.array_equal(a.X, b.X)
    assert {p.name for p in cache.iterdir()} == {
        "convex-seed0.npz",
        "convex-seed0.json",
        "convex-seed1.npz",
        "convex-seed1.json",
    }


def test_the_same_data_give_the_same_file(generator: FakeGenerator, cache: Path) -> None:
    load_variation("convex")
    first = (cache / "convex-seed0.npz").read_bytes()
    (cache / "convex-seed0.json").unlink()  # an interrupted write: regenerated
    load_variation("convex")
    assert len(generator.calls) == 2
    assert (cache / "convex-seed0.npz").read_bytes() == first


def test_corrupt_cache_is_an_error(generator: FakeGenerator, cache: Path) -> None:
    load_variation("convex")
    npz = cache / "convex-seed0.npz"
    data = bytearray(npz.read_bytes())
    data[-100] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(
        DataError,
        match=rf"^{npz} is corrupt: its md5 is [0-9a-f]{{32}}, but convex-seed0\.json records "
        rf"[0-9a-f]{{32}}; delete {npz} and {cache}/convex-seed0\.json to regenerate the data$",
    ):
        load_variation("convex")
    assert len(generator.calls) == 1


def test_unreadable_record_is_an_error(generator: FakeGenerator, cache: Path) -> None:
    load_variation("convex")
    (cache / "convex-seed0.json").write_text("{not json")
    with pytest.raises(
        DataError,
        match=rf"^{cache}/convex-seed0\.json is not a valid cache record \(.*\); delete .*"
        r"convex-seed0\.npz and .*convex-seed0\.json to regenerate the data$",
    ):
        load_variation("convex")


def test_a_new_generator_version_regenerates(
    generator: FakeGenerator, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_variation("convex")
    monkeypatch.setattr(variations, "GENERATOR_VERSION", GENERATOR_VERSION + 1)
    assert "made by another generator version" in variation_status("convex")
    load_variation("convex")
    assert len(generator.calls) == 2
    meta = json.loads((cache / "convex-seed0.json").read_text())
    assert meta["generator_version"] == GENERATOR_VERSION + 1
    load_variation("convex")
    assert len(generator.calls) == 2


def test_a_failing_generator_leaves_no_file(generator: FakeGenerator, cache: Path) -> None:
    generator.fail = True
    with pytest.raises(RuntimeError, match="generator failed"):
        load_variation("convex")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_a_failing_write_leaves_no_file(
    generator: FakeGenerator, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(fh: object, arrays: object) -> None:
        fh.write(b"half a zip")  # type: ignore[attr-defined]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(variations, "_zip_arrays", broken)
    with pytest.warns(
        RuntimeWarning,
        match=rf"The regenerated convex could not be cached in {cache} \(\[Errno 28\] No space "
        r"left on device\); it will be regenerated on the next load\.",
    ):
        ds = load_variation("convex")
    assert ds.X.shape == (3, 784)  # the data are still returned
    assert list(cache.iterdir()) == []


def test_originals_win_over_the_cache(
    generator: FakeGenerator, tiny: Callable, tmp_path: Path
) -> None:
    load_variation("convex")
    write_originals(tmp_path, tiny("convex"))
    ds = load_variation("convex", data_dir=tmp_path)
    assert ds.provenance.startswith("original files: ")
    assert len(generator.calls) == 1


# ---------------------------------------------------------------------------------------------
# Status


def test_status(generator: FakeGenerator, tiny: Callable, tmp_path: Path, cache: Path) -> None:
    not_yet = (
        "regenerated, comparable to but not the same as the original (cache: not yet generated)"
    )
    assert variation_status("convex", tmp_path) == not_yet
    load_variation("convex")
    assert variation_status("convex", tmp_path) == (
        "regenerated, comparable to but not the same as the original "
        f"(cache: {cache / 'convex-seed0.npz'})"
    )
    assert variation_status("convex", tmp_path, seed=1) == not_yet
    train_file, test_file = write_originals(tmp_path, tiny("convex"))
    assert variation_status("convex", tmp_path) == f"original files at {train_file} and {test_file}"
    train_file.unlink()
    assert variation_status("convex", tmp_path).startswith(
        f"incomplete original files: Found {test_file} but not convex_train.amat"
    )


# ---------------------------------------------------------------------------------------------
# The real generator, when it is there


def test_regenerates_rectangles_for_real(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    imagegen = pytest.importorskip("contractive.imagegen")
    monkeypatch.setitem(imagegen.VARIATION_SIZES, "rectangles", (20, 10, 30))
    train = load_variation("rectangles", seed=1)
    everything = load_variation("rectangles", "all", seed=1)
    assert train.X.shape == (20, 784)
    assert everything.X.shape == (60, 784)
    assert set(np.unique(everything.y).tolist()) <= {0, 1}
    assert float(everything.X.min()) >= 0.0
    assert float(everything.X.max()) <= 1.0
    np.testing.assert_array_equal(everything.X[:20], train.X)
    assert (cache / "rectangles-seed1.npz").is_file()


def test_regenerated_sizes_are_the_originals() -> None:
    imagegen = pytest.importorskip("contractive.imagegen")
    assert {
        name: (s.n_train, s.n_valid, s.n_test) for name, s in VARIATIONS.items()
    } == imagegen.VARIATION_SIZES
    assert imagegen.NEEDS_MNIST == MNIST_NAMES
