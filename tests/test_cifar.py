"""Tests of contractive.cifar: the binary CIFAR-10 batches, gray-scaling, lookup and download.

Every file is written here, in the release's exact byte layout, so nothing needs a network: the
archive is built with ``tarfile`` (its md5 is patched in as the expected one) and "downloaded"
from a ``file://`` URL. The cache folder is moved under ``tmp_path`` for every test.
"""

from __future__ import annotations

import ast
import hashlib
import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from contractive import cifar
from contractive.cifar import (
    CIFAR10_CLASSES,
    load_cifar_bw,
    locate_cifar_files,
    read_cifar_binary,
    to_gray,
)
from contractive.exceptions import ConfigError, DataError
from contractive.idx import default_data_dir

RECORD = 3073
TRAIN = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
TEST = "test_batch.bin"
ARCHIVE = "cifar-10-binary.tar.gz"
N_PER_FILE = 3


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache folder under tmp_path, and no CONTRACTIVE_DATA_DIR from the environment."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("CONTRACTIVE_DATA_DIR", raising=False)
    return tmp_path / "xdg"


def cache_dir() -> Path:
    return default_data_dir() / "cifar-10"


def batch_bytes(images: np.ndarray, labels: np.ndarray) -> bytes:
    """``(n, 3, 32, 32)`` uint8 images and ``(n,)`` labels as the release stores them."""
    n = images.shape[0]
    records = np.empty((n, RECORD), dtype=np.uint8)
    records[:, 0] = labels
    records[:, 1:] = images.reshape(n, 3072)  # R plane, G plane, B plane, each row-major
    return records.tobytes()


def make_release(seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Random images and labels for the six batch files, N_PER_FILE records each."""
    rng = np.random.default_rng(seed)
    return {
        name: (
            rng.integers(0, 256, (N_PER_FILE, 3, 32, 32), dtype=np.uint8),
            rng.integers(0, 10, N_PER_FILE, dtype=np.uint8),
        )
        for name in (*TRAIN, TEST)
    }


def write_release(folder: Path, release: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (images, labels) in release.items():
        (folder / name).write_bytes(batch_bytes(images, labels))
    return folder


def reference_gray(images: np.ndarray) -> np.ndarray:
    """The formula in float64, written out independently of the module."""
    rgb = images.astype(np.float64)
    gray = 0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]
    return (gray / 255).reshape(len(images), -1)


def expected(
    release: dict[str, tuple[np.ndarray, np.ndarray]], names: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate([reference_gray(release[n][0]) for n in names])
    y = np.concatenate([release[n][1] for n in names]).astype(np.int64)
    return X, y


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_archive(
    path: Path,
    release: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    skip: tuple[str, ...] = (),
    extra: dict[str, bytes] | None = None,
) -> str:
    """Write a .tar.gz laid out like the release; return its md5."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        add_member(
            tar, "cifar-10-batches-bin/batches.meta.txt", "\n".join(CIFAR10_CLASSES).encode()
        )
        for name, (images, labels) in release.items():
            if name not in skip:
                add_member(tar, f"cifar-10-batches-bin/{name}", batch_bytes(images, labels))
        add_member(tar, "cifar-10-batches-bin/readme.html", b"<html></html>")
        for name, data in (extra or {}).items():
            add_member(tar, name, data)
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def all_files(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


# --- read_cifar_binary -----------------------------------------------------------------------


def test_read_cifar_binary_layout(tmp_path: Path) -> None:
    # One record whose planes say where each byte went: R counts up, G is 100, B is 200.
    red = (np.arange(1024) % 256).astype(np.uint8)
    raw = bytes([9]) + red.tobytes() + bytes([100]) * 1024 + bytes([200]) * 1024
    path = tmp_path / "one.bin"
    path.write_bytes(raw + bytes([0]) + bytes(3072))
    images, labels = read_cifar_binary(path)
    assert images.shape == (2, 3, 32, 32)
    assert images.dtype == np.uint8
    assert labels.dtype == np.int64
    assert labels.tolist() == [9, 0]
    np.testing.assert_array_equal(images[0, 0], red.reshape(32, 32))  # row-major
    assert images[0, 0, 1, 0] == 32  # row 1, column 0 is byte 32 of the plane
    assert (images[0, 1] == 100).all()
    assert (images[0, 2] == 200).all()
    assert (images[1] == 0).all()


def test_read_cifar_binary_round_trip(tmp_path: Path) -> None:
    images, labels = make_release()[TEST]
    (tmp_path / TEST).write_bytes(batch_bytes(images, labels))
    got_images, got_labels = read_cifar_binary(tmp_path / TEST)
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)


def test_read_cifar_binary_incomplete_record(tmp_path: Path) -> None:
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(2 * RECORD + 100))
    with pytest.raises(
        DataError,
        match=r"data_batch_1\.bin is 6246 bytes, not a whole number of 3073-byte records: "
        r"the record at byte offset 6146 is incomplete \(100 bytes\)",
    ):
        read_cifar_binary(path)


def test_read_cifar_binary_bad_label(tmp_path: Path) -> None:
    path = tmp_path / "test_batch.bin"
    labels = np.array([0, 9, 10, 255], dtype=np.uint8)
    path.write_bytes(batch_bytes(np.zeros((4, 3, 32, 32), dtype=np.uint8), labels))
    with pytest.raises(
        DataError,
        match=r"test_batch\.bin: record 2 \(byte offset 6146\) has label byte 10, expected 0-9",
    ):
        read_cifar_binary(path)


def test_read_cifar_binary_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty.bin").write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.bin is empty"):
        read_cifar_binary(tmp_path / "empty.bin")
    with pytest.raises(DataError, match=r"nope\.bin could not be read"):
        read_cifar_binary(tmp_path / "nope.bin")


# --- to_gray ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rgb", "gray"),
    [
        ((255, 0, 0), 0.299),
        ((0, 255, 0), 0.587),
        ((0, 0, 255), 0.114),
        ((10, 20, 30), (0.299 * 10 + 0.587 * 20 + 0.114 * 30) / 255),
        ((0, 0, 0), 0.0),
        ((255, 255, 255), 1.0),
    ],
)
def test_to_gray_formula(rgb: tuple[int, int, int], gray: float) -> None:
    images = np.empty((1, 3, 32, 32), dtype=np.uint8)
    for c, value in enumerate(rgb):
        images[0, c] = value
    out = to_gray(images)
    assert out.shape == (1, 1024)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, np.float32(gray))


def test_to_gray_matches_the_formula_on_random_images() -> None:
    images = np.random.default_rng(1).integers(0, 256, (50, 3, 32, 32), dtype=np.uint8)
    got = to_gray(images)
    # The docstring's promise: the float32 nearest to the exact value.
    np.testing.assert_array_equal(got, reference_gray(images).astype(np.float32))
    assert got.min() >= 0.0
    assert got.max() <= 1.0


def test_to_gray_gray_pixels_are_v_over_255() -> None:
    v = np.arange(256, dtype=np.uint8)
    images = np.broadcast_to(v[:, None, None, None], (256, 3, 2, 3)).copy()  # (256, 3, 2, 3)
    got = to_gray(images)
    assert got.shape == (256, 6)
    np.testing.assert_array_equal(got, np.repeat((v / 255).astype(np.float32)[:, None], 6, 1))


def test_to_gray_row_major_and_strided_input() -> None:
    images = np.zeros((2, 3, 32, 32), dtype=np.uint8)
    images[1, :, 0, 1] = 255  # row 0, column 1 of the second image is white
    strided = np.concatenate([images, images], axis=1)[:, :3]  # a non-contiguous view
    assert not strided.flags.c_contiguous
    got = to_gray(strided)
    assert got[1, 1] == 1.0
    assert got.sum() == 1.0


def test_to_gray_writes_into_out() -> None:
    images = np.full((2, 3, 32, 32), 51, dtype=np.uint8)
    big = np.full((5, 1024), -1.0, dtype=np.float32)
    result = to_gray(images, out=big[1:3])
    assert np.shares_memory(result, big)
    np.testing.assert_array_equal(big[1:3], np.float32(0.2))
    assert (big[[0, 3, 4]] == -1).all()


def test_to_gray_errors() -> None:
    good = np.zeros((2, 3, 4, 4), dtype=np.uint8)
    with pytest.raises(
        ConfigError,
        match=r"The 'images' parameter of to_gray must be a uint8 array of shape "
        r"\(n, 3, height, width\)\. Got an array of dtype float64 and shape \(2, 3, 4, 4\) "
        r"instead\.",
    ):
        to_gray(good.astype(np.float64))
    with pytest.raises(ConfigError, match=r"Got an array of dtype uint8 and shape \(2, 1, 4, 4\)"):
        to_gray(good[:, :1])
    with pytest.raises(ConfigError, match=r"Got a list instead"):
        to_gray([[1, 2, 3]])  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError,
        match=r"The 'out' parameter of to_gray must be a writable C-contiguous float32 array of "
        r"shape \(2, 16\) or None\. Got an array of dtype float32 and shape \(2, 15\) instead\.",
    ):
        to_gray(good, out=np.empty((2, 15), dtype=np.float32))
    with pytest.raises(ConfigError, match=r"Got an array of dtype float64 and shape \(2, 16\)"):
        to_gray(good, out=np.empty((2, 16)))
    with pytest.raises(ConfigError, match=r"'out' parameter"):
        to_gray(good, out=np.empty((16, 2), dtype=np.float32).T)  # not C-contiguous


# --- load_cifar_bw and the lookup ------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "names"), [("train", TRAIN), ("test", (TEST,)), ("all", (*TRAIN, TEST))]
)
def test_load_cifar_bw_splits(tmp_path: Path, split: str, names: tuple[str, ...]) -> None:
    release = make_release()
    folder = write_release(tmp_path / "data", release)
    ds = load_cifar_bw(split, folder, download=False)
    X, y = expected(release, names)
    assert ds.X.shape == (N_PER_FILE * len(names), 1024)
    assert ds.X.dtype == np.float32
    assert ds.y is not None
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(ds.y, y)
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))
    assert ds.image_shape == (32, 32)
    assert ds.name == "cifar-bw"
    assert ds.provenance == "CIFAR-10 binary release, gray = 0.299 R + 0.587 G + 0.114 B"


def test_load_cifar_bw_known_pixels(tmp_path: Path) -> None:
    # Constant planes per file: file k is R = 10 k, G = 20 k, B = 30 k, label k.
    folder = tmp_path / "data"
    folder.mkdir()
    for k, name in enumerate((*TRAIN, TEST)):
        images = np.empty((1, 3, 32, 32), dtype=np.uint8)
        images[0, 0], images[0, 1], images[0, 2] = 10 * k, 20 * k, 30 * k
        (folder / name).write_bytes(batch_bytes(images, np.array([k])))
    ds = load_cifar_bw("all", folder, download=False)
    assert ds.y is not None
    assert ds.y.tolist() == [0, 1, 2, 3, 4, 5]
    for k in range(6):
        want = (0.299 * 10 * k + 0.587 * 20 * k + 0.114 * 30 * k) / 255
        np.testing.assert_allclose(ds.X[k], want, rtol=1e-6)


def test_files_in_the_archive_layout_and_in_named_subfolders(tmp_path: Path) -> None:
    release = make_release()
    write_release(tmp_path / "a" / "cifar-10-batches-bin", release)
    write_release(tmp_path / "b" / "cifar-10" / "cifar-10-batches-bin", release)
    write_release(tmp_path / "c" / "cifar-10", release)
    X, _ = expected(release, TRAIN)
    for root, where in [
        ("a", "a/cifar-10-batches-bin"),
        ("b", "b/cifar-10/cifar-10-batches-bin"),
        ("c", "c/cifar-10"),
    ]:
        paths = locate_cifar_files("train", tmp_path / root, download=False)
        assert paths == [tmp_path / where / name for name in TRAIN]
        ds = load_cifar_bw("train", tmp_path / root, download=False)
        np.testing.assert_array_equal(ds.X, X.astype(np.float32))


def test_environment_folder_and_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_release(tmp_path / "env", make_release(seed=1))
    monkeypatch.setenv("CONTRACTIVE_DATA_DIR", str(tmp_path / "env"))
    assert locate_cifar_files("test", None, download=False) == [tmp_path / "env" / TEST]
    # data_dir is looked at before the environment variable.
    write_release(tmp_path / "arg", make_release(seed=2))
    assert locate_cifar_files("test", tmp_path / "arg", download=False) == [tmp_path / "arg" / TEST]


def test_a_split_is_never_mixed_from_two_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = make_release()
    write_release(tmp_path / "arg", {n: release[n] for n in TRAIN[:4]})
    write_release(tmp_path / "env", {n: release[n] for n in TRAIN[4:]})
    monkeypatch.setenv("CONTRACTIVE_DATA_DIR", str(tmp_path / "env"))
    with pytest.raises(DataError, match=r"not found: data_batch_1\.bin, .*data_batch_5\.bin"):
        locate_cifar_files("train", tmp_path / "arg", download=False)


def test_missing_files_without_download(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as info:
        load_cifar_bw("test", empty, download=False)
    message = str(info.value)
    assert message.startswith("CIFAR-10 binary file(s) not found: test_batch.bin; looked in ")
    assert str(empty) in message
    assert f"{empty / 'cifar-10'} (does not exist)" in message
    assert str(cache_dir()) in message
    assert "Downloading is off (download=False)" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    assert "c32a1d4ab5d03f1284b67883e8d87530" in message
    assert "pickle" not in message
    assert all_files(tmp_path / "xdg") == []


def test_bad_split() -> None:
    with pytest.raises(
        ConfigError,
        match=r"The 'split' parameter must be a str among \{'train', 'test', 'all'\}\. "
        r"Got 'valid' instead\.",
    ):
        load_cifar_bw("valid", download=False)
    with pytest.raises(ValueError, match=r"'split' parameter"):
        locate_cifar_files("Train", download=False)


def test_errors_in_a_batch_file_reach_the_caller(tmp_path: Path) -> None:
    folder = write_release(tmp_path / "data", make_release())
    with (folder / TRAIN[2]).open("ab") as f:
        f.write(bytes(5))
    with pytest.raises(DataError, match=r"data_batch_3\.bin is 9224 bytes.*byte offset 9219"):
        load_cifar_bw("train", folder, download=False)
    raw = bytearray((folder / TEST).read_bytes())
    raw[RECORD] = 42  # the label byte of record 1
    (folder / TEST).write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"test_batch\.bin: record 1 \(byte offset 3073\)"):
        load_cifar_bw("test", folder, download=False)


# --- the archive -----------------------------------------------------------------------------


def test_archive_is_extracted_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = make_release()
    archive = tmp_path / "data" / ARCHIVE
    evil = {
        "../outside.bin": b"x",
        "cifar-10-batches-bin/../../escaped.bin": b"x",
        "/absolute.bin": b"x",
        "cifar-10-batches-bin/data_batch_1": b"x",  # the python release's name
    }
    md5 = make_archive(archive, release, extra=evil)
    monkeypatch.setattr(cifar, "_ARCHIVE_MD5", md5)
    ds = load_cifar_bw("all", tmp_path / "data", download=False)
    X, y = expected(release, (*TRAIN, TEST))
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))
    np.testing.assert_array_equal(ds.y, y)
    # Only the six .bin members, only into the cache; nothing next to the archive or above.
    assert all_files(cache_dir()) == sorted(f"cifar-10-batches-bin/{n}" for n in (*TRAIN, TEST))
    assert all_files(tmp_path / "data") == [ARCHIVE]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "xdg"]
    # The extracted files are found first from now on, even with the archive gone.
    archive.unlink()
    assert locate_cifar_files("test", tmp_path / "data", download=False) == [
        cache_dir() / "cifar-10-batches-bin" / TEST
    ]


def test_extracted_files_win_over_an_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An archive in data_dir is not re-read (nor md5-checked) when extracted files exist.
    write_release(cache_dir() / "cifar-10-batches-bin", make_release())
    (tmp_path / ARCHIVE).write_bytes(b"not even gzip")
    paths = locate_cifar_files("train", tmp_path, download=False)
    assert paths == [cache_dir() / "cifar-10-batches-bin" / n for n in TRAIN]


def test_archive_with_the_wrong_md5(tmp_path: Path) -> None:
    archive = tmp_path / ARCHIVE
    md5 = make_archive(archive, make_release())
    with pytest.raises(
        DataError,
        match=rf"{ARCHIVE} has md5 {md5}, expected c32a1d4ab5d03f1284b67883e8d87530: the file "
        r"is corrupt or not the original",
    ):
        load_cifar_bw("train", tmp_path, download=True)
    assert all_files(tmp_path / "xdg") == []  # nothing extracted, nothing downloaded


def test_archive_that_is_not_a_tar_gz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ARCHIVE).write_bytes(b"not an archive")
    monkeypatch.setattr(cifar, "_ARCHIVE_MD5", hashlib.md5(b"not an archive").hexdigest())
    with pytest.raises(DataError, match=rf"{ARCHIVE} is not a valid \.tar\.gz archive"):
        locate_cifar_files("test", tmp_path, download=False)
    assert all_files(cache_dir()) == []


def test_archive_without_a_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    md5 = make_archive(tmp_path / ARCHIVE, make_release(), skip=(TEST,))
    monkeypatch.setattr(cifar, "_ARCHIVE_MD5", md5)
    with pytest.raises(DataError, match=r"lacks the member\(s\) cifar-10-batches-bin/test_batch"):
        locate_cifar_files("test", tmp_path, download=False)
    # The members that were there are complete files; no temporary file is left.
    assert all_files(cache_dir()) == sorted(f"cifar-10-batches-bin/{n}" for n in TRAIN)


def test_archive_member_that_is_a_link(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo(f"cifar-10-batches-bin/{TEST}")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setattr(cifar, "_ARCHIVE_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    with pytest.raises(DataError, match=rf"member cifar-10-batches-bin/{TEST} is not a regular"):
        locate_cifar_files("test", tmp_path, download=False)
    assert all_files(cache_dir()) == []
    assert not (cache_dir() / "cifar-10-batches-bin" / TEST).is_symlink()


# --- download --------------------------------------------------------------------------------


def test_download_from_a_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = make_release()
    source = tmp_path / "mirror" / "cifar-10-binary.tar.gz"
    md5 = make_archive(source, release)
    monkeypatch.setattr(cifar, "_URLS", (source.as_uri(),))
    monkeypatch.setattr(cifar, "_ARCHIVE_MD5", md5)
    ds = load_cifar_bw("test")
    X, y = expected(release, (TEST,))
    np.testing.assert_array_equal(ds.X, X.astype(np.float32))
    np.testing.assert_array_equal(ds.y, y)
    assert cache_dir() == tmp_path / "xdg" / "contractive" / "cifar-10"
    assert all_files(cache_dir()) == sorted(
        [ARCHIVE, *(f"cifar-10-batches-bin/{n}" for n in (*TRAIN, TEST))]
    )
    # A second load reads the extracted files, with no download.
    monkeypatch.setattr(cifar, "_URLS", ((tmp_path / "gone").as_uri(),))
    assert load_cifar_bw("train").n_samples == 5 * N_PER_FILE


def test_download_with_the_wrong_md5_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "mirror" / ARCHIVE
    make_archive(source, make_release())
    monkeypatch.setattr(cifar, "_URLS", (source.as_uri(),))
    with pytest.raises(
        DataError,
        match=rf"Could not download {ARCHIVE}; tried file://.*expected "
        r"c32a1d4ab5d03f1284b67883e8d87530",
    ):
        load_cifar_bw("train")
    assert all_files(tmp_path / "xdg") == []  # no partial archive, nothing extracted


def test_a_failed_download_says_what_to_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cifar, "_URLS", ((tmp_path / "gone" / ARCHIVE).as_uri(),))
    with pytest.raises(DataError) as info:
        load_cifar_bw("test")
    message = str(info.value)
    assert message.startswith(f"Could not download {ARCHIVE}; tried file://")
    assert message.endswith(
        f"Without network, place {ARCHIVE} or its extracted .bin files in a folder and pass "
        "--data-dir DIR or set CONTRACTIVE_DATA_DIR."
    )
    assert "four files" not in message  # not the MNIST advice
    assert all_files(tmp_path / "xdg") == []


# --- never the python (pickle) release -------------------------------------------------------


def test_the_python_release_is_not_picked_up(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    release = make_release()
    for name, (images, labels) in release.items():
        # Right bytes under the python release's names (no .bin): still not read.
        (folder / name.removesuffix(".bin")).write_bytes(batch_bytes(images, labels))
    with pytest.raises(
        DataError, match=r"not found: .*python \(pickle\) release at .*data_batch_1: it is not"
    ):
        load_cifar_bw("all", folder, download=False)
    with pytest.raises(DataError, match=r"python \(pickle\) release at .*cifar-10-batches-py"):
        load_cifar_bw("all", tmp_path, download=False)


def test_the_module_never_unpickles() -> None:
    tree = ast.parse(Path(cifar.__file__).read_text(encoding="utf-8"))
    forbidden_modules = {"pickle", "cPickle", "_pickle", "dill", "joblib", "shelve", "marshal"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {a.name.split(".")[0] for a in node.names} & forbidden_modules
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in forbidden_modules
        elif isinstance(node, ast.Name):
            assert node.id not in forbidden_modules
        elif isinstance(node, ast.Attribute):
            # np.load can unpickle; extract / extractall write where the archive says.
            assert node.attr not in {"load", "loads", "extract", "extractall", "Unpickler"}
        elif isinstance(node, ast.keyword):
            assert node.arg != "allow_pickle"


def test_class_names() -> None:
    assert len(CIFAR10_CLASSES) == 10
    assert CIFAR10_CLASSES[0] == "airplane"
    assert CIFAR10_CLASSES[9] == "truck"
