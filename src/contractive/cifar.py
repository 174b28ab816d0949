"""CIFAR-10 from its binary release, gray-scaled: the "CIFAR-bw" of the CAE paper's Table 1.

Only the binary release (``cifar-10-binary.tar.gz``) is read; the "python" release is a set of
pickles, and no pickle is ever loaded here. Its six batch files hold records of 3073 bytes: a
label byte (0-9, see :data:`CIFAR10_CLASSES`) then 3072 pixel bytes, the 1024 red, 1024 green
and 1024 blue values of a 32x32 image, each plane row-major. ``data_batch_1.bin`` ..
``data_batch_5.bin`` are the 50000 training images, ``test_batch.bin`` the 10000 test images.

The files are looked for in the folders of :func:`contractive.idx.search_dirs` for
``"cifar-10"``: the ``data_dir`` argument (the folder itself, then ``<data_dir>/cifar-10/``);
the ``CONTRACTIVE_DATA_DIR`` environment variable (same two places); the cache folder
``default_data_dir() / "cifar-10"``. First every folder is searched for a complete set of the
``.bin`` files needed, lying in it directly or in its ``cifar-10-batches-bin/`` subfolder (as
the archive unpacks); then for the archive ``cifar-10-binary.tar.gz``, md5-checked, whose
``.bin`` members are extracted into ``default_data_dir() / "cifar-10" / "cifar-10-batches-bin"``
(so the next call finds them there). Found nowhere, the archive is downloaded into the cache
folder when ``download`` is true, then extracted.

The paper does not say how it made the images gray. Here it is the ITU-R BT.601 luma,
``gray = 0.299 R + 0.587 G + 0.114 B``, divided by 255 into [0, 1] (PIL's ``convert("L")``
without its rounding to integers): see :func:`to_gray`.
"""

from __future__ import annotations

import os
import tarfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from contractive.exceptions import DataError
from contractive.idx import check_md5, default_data_dir, download_file, search_dirs
from contractive.validation import check_choice, parameter_error

if TYPE_CHECKING:
    # Imported in the functions at run time: contractive.data may import this module to
    # offer "cifar-bw" itself, and a module-level import both ways would be circular.
    from contractive.data import Dataset

__all__ = [
    "CIFAR10_CLASSES",
    "load_cifar_bw",
    "locate_cifar_files",
    "read_cifar_binary",
    "to_gray",
]

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
"""The ten class names, indexed by label byte (the lines of ``batches.meta.txt``)."""

# The Dataset.provenance of what load_cifar_bw returns.
_PROVENANCE = "CIFAR-10 binary release, gray = 0.299 R + 0.587 G + 0.114 B"
_NAME = "cifar-10"  # the subfolder name of search_dirs and of the cache
_ARCHIVE = "cifar-10-binary.tar.gz"
_ARCHIVE_DIR = "cifar-10-batches-bin"  # the one folder inside the archive
_URLS: tuple[str, ...] = ("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",)
_ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
_SPLITS = ("train", "test", "all")
_FILES: dict[str, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
_SIDE = 32
_RECORD = 1 + 3 * _SIDE * _SIDE  # 3073 bytes: label, then the R, G and B planes
_N_CLASSES = len(CIFAR10_CLASSES)
# BT.601 weights times 1000: with integer weights, the weighted sum of bytes is an integer of
# at most 255000 < 2**24, so float32 holds it exactly and only the final division rounds.
_LUMA_X1000 = (299, 587, 114)
_EXTRACT_CHUNK = 1 << 20
# The end of the message when the download fails ("Without network, ...").
_HINT_DATA_DIR = (
    f"place {_ARCHIVE} or its extracted .bin files in a folder and pass --data-dir DIR or set "
    "CONTRACTIVE_DATA_DIR"
)


def read_cifar_binary(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """Read one batch file of the binary CIFAR-10 release.

    Parameters
    ----------
    path : str or path-like
        A ``.bin`` file: records of one label byte (0-9) and 3072 pixel bytes (the 1024 red,
        1024 green and 1024 blue values of a 32x32 image, each plane row-major).

    Returns
    -------
    images : np.ndarray
        ``(n, 3, 32, 32)`` uint8, channels in R, G, B order: a strided view of the bytes
        read (no copy is made).
    labels : np.ndarray
        ``(n,)`` int64.

    Raises
    ------
    DataError
        If the file cannot be read, is empty, is not a whole number of 3073-byte records (the
        message gives the byte offset of the incomplete record), or holds a label byte above
        9 (the message gives the record's index and byte offset).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "data_batch_1.bin"
    >>> red = bytes([255] * 1024 + [0] * 2048)  # a red image
    >>> _ = path.write_bytes(bytes([7]) + red + bytes([2]) + bytes(3072))
    >>> images, labels = read_cifar_binary(path)
    >>> images.shape, images.dtype, labels.tolist()
    ((2, 3, 32, 32), dtype('uint8'), [7, 2])
    >>> images[0, :, 0, 0].tolist()  # R, G, B of the top-left pixel
    [255, 0, 0]
    >>> _ = path.write_bytes(bytes(3073 + 100))
    >>> read_cifar_binary(path)
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: .../data_batch_1.bin is 3173 bytes, not a whole number of
    3073-byte records: the record at byte offset 3073 is incomplete (100 bytes). ...
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)  # (size,)
    except OSError as exc:
        raise DataError(f"{path} could not be read: {exc}") from exc
    size = int(data.size)
    if size == 0:
        raise DataError(f"{path} is empty: a CIFAR-10 batch file holds {_RECORD}-byte records")
    n, rest = divmod(size, _RECORD)
    if rest:
        raise DataError(
            f"{path} is {size} bytes, not a whole number of {_RECORD}-byte records: the record "
            f"at byte offset {n * _RECORD} is incomplete ({rest} bytes). The file is truncated "
            "or not a batch of the binary CIFAR-10 release."
        )
    records = data.reshape(n, _RECORD)  # (n, 3073), a view
    labels = records[:, 0]  # (n,)
    bad = np.flatnonzero(labels >= _N_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: record {i} (byte offset {i * _RECORD}) has label byte {int(labels[i])}, "
            f"expected 0-{_N_CLASSES - 1}. The file is corrupt or not a batch of the binary "
            "CIFAR-10 release."
        )
    images = records[:, 1:].reshape(n, 3, _SIDE, _SIDE)  # (n, 3, 32, 32), a view
    return images, labels.astype(np.int64)


class _Described:
    """An argument as an error message shows it: its type, or an array's dtype and shape."""

    def __init__(self, value: object) -> None:
        self.value = value

    def __repr__(self) -> str:
        v = self.value
        if isinstance(v, np.ndarray):
            return f"an array of dtype {v.dtype} and shape {v.shape}"
        return f"a {type(v).__name__}"


def to_gray(images: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Turn RGB images of bytes into gray values in [0, 1], one row per image.

    ``gray = (0.299 R + 0.587 G + 0.114 B) / 255``: the ITU-R BT.601 luma, as PIL's
    ``convert("L")`` computes it but without its rounding to an integer, scaled like the MNIST
    images. The CAE paper does not state the formula it used for CIFAR-bw. The work is done in
    float32, exactly until the last step: the sum is taken with the integer weights 299, 587
    and 114 (at most 255000 < 2**24, so float32 holds it exactly) and divided once by 255000.
    Each value is therefore the float32 nearest to the exact one; it lies in [0, 1], and a
    gray pixel (R = G = B = v) gives exactly ``np.float32(v / 255)``.

    Parameters
    ----------
    images : np.ndarray
        ``(n, 3, height, width)`` uint8, channels in R, G, B order (as
        :func:`read_cifar_binary` returns them); any strides.
    out : np.ndarray, optional
        A C-contiguous ``(n, height * width)`` float32 array to write into, e.g. rows of a
        larger array, so that no second copy of the result is made.

    Returns
    -------
    np.ndarray
        ``(n, height * width)`` float32, each image's rows one after the other (``out`` when
        given).

    Raises
    ------
    ConfigError
        If ``images`` is not a uint8 array of shape ``(n, 3, height, width)``, or ``out`` does
        not fit it.

    Examples
    --------
    >>> import numpy as np
    >>> images = np.zeros((3, 3, 32, 32), dtype=np.uint8)  # (n, RGB, 32, 32)
    >>> images[0, 0] = 255  # pure red
    >>> images[1, 1] = 255  # pure green
    >>> images[2] = 51  # gray: R = G = B = 51
    >>> gray = to_gray(images)
    >>> gray.shape, gray.dtype
    ((3, 1024), dtype('float32'))
    >>> [round(float(v), 6) for v in gray[:, 0]]
    [0.299, 0.587, 0.2]
    >>> to_gray(images.astype(np.float32))
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'images' parameter of to_gray must be a uint8 array
    of shape (n, 3, height, width). Got an array of dtype float32 and shape (3, 3, 32, 32) instead.
    """
    if not (
        isinstance(images, np.ndarray)
        and images.dtype == np.uint8
        and images.ndim == 4
        and images.shape[1] == 3
    ):
        raise parameter_error(
            "images",
            "a uint8 array of shape (n, 3, height, width)",
            _Described(images),
            owner="to_gray",
        )
    n, _, height, width = images.shape
    if out is None:
        out = np.empty((n, height * width), dtype=np.float32)
    elif not (
        isinstance(out, np.ndarray)
        and out.dtype == np.float32
        and out.shape == (n, height * width)
        and out.flags.c_contiguous
        and out.flags.writeable
    ):
        raise parameter_error(
            "out",
            f"a writable C-contiguous float32 array of shape {(n, height * width)} or None",
            _Described(out),
            owner="to_gray",
        )
    # A view, not a copy, because out is C-contiguous: writing acc writes out.
    acc = out.reshape(n, height, width)  # (n, h, w)
    tmp = np.empty_like(acc)  # (n, h, w): one channel at a time keeps the extra memory small
    w_r, w_g, w_b = (np.float32(w) for w in _LUMA_X1000)
    np.multiply(images[:, 0], w_r, out=acc, dtype=np.float32)
    np.multiply(images[:, 1], w_g, out=tmp, dtype=np.float32)
    acc += tmp
    np.multiply(images[:, 2], w_b, out=tmp, dtype=np.float32)
    acc += tmp
    acc /= np.float32(255 * 1000)
    return out


def _complete_set(folder: Path, names: tuple[str, ...]) -> list[Path] | None:
    """The files ``names`` in ``folder`` or its ``cifar-10-batches-bin/``, if one has all."""
    for d in (folder, folder / _ARCHIVE_DIR):
        paths = [d / fn for fn in names]
        if all(p.is_file() for p in paths):
            return paths
    return None


def _extract(archive: Path, dest: Path) -> None:
    """Copy the archive's ``.bin`` members into ``dest``, each file atomically.

    Only the member names the release is known to hold are read, each through
    ``TarFile.extractfile`` into a file whose path is built here, so nothing in the archive
    (absolute names, ``..``, links) can write anywhere else. The stream is read once, in order.
    """
    from contractive.runs import atomic_writer  # runs imports torch, not needed before here

    wanted = {f"{_ARCHIVE_DIR}/{fn}": fn for names in _FILES.values() for fn in names}
    dest.mkdir(parents=True, exist_ok=True)
    done: set[str] = set()
    try:
        with tarfile.open(archive, mode="r|gz") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name not in wanted or name in done:
                    continue
                if not member.isfile():
                    raise DataError(f"{archive}: member {member.name} is not a regular file")
                src = tar.extractfile(member)
                if src is None:  # pragma: no cover - isfile() members always have data
                    raise DataError(f"{archive}: member {member.name} has no data")
                # The file replaces its path only if the with-block ends without an error.
                with atomic_writer(dest / wanted[name], suffix=".part") as out:
                    while chunk := src.read(_EXTRACT_CHUNK):
                        out.write(chunk)
                done.add(name)
    except (tarfile.TarError, EOFError, zlib.error) as exc:
        raise DataError(f"{archive} is not a valid .tar.gz archive ({exc})") from exc
    except OSError as exc:
        # A damaged gzip stream is an OSError too (BadGzipFile); so is a full disk.
        raise DataError(f"{archive} could not be extracted into {dest}: {exc}") from exc
    missing = sorted(set(wanted) - done)
    if missing:
        raise DataError(f"{archive} lacks the member(s) {', '.join(missing)}")


def locate_cifar_files(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> list[Path]:
    """Find (extracting or downloading if need be) the batch files of a split of CIFAR-10.

    The search is the module docstring's: extracted ``.bin`` files in any folder of
    :func:`~contractive.idx.search_dirs` first (all of a split's files from one folder),
    then an md5-checked ``cifar-10-binary.tar.gz``, extracted into the cache folder; last, with
    ``download``, the archive downloaded into the cache folder and extracted.

    Parameters
    ----------
    split : {"train", "test", "all"}
        ``"all"`` is train followed by test.
    data_dir : str or path-like, optional
        A folder holding the ``.bin`` files (directly or in ``cifar-10-batches-bin/``) or the
        archive, itself or in a subfolder ``cifar-10``.
    download : bool
        Download the archive into ``default_data_dir() / "cifar-10"`` when nothing is found.

    Returns
    -------
    list of pathlib.Path
        ``data_batch_1.bin`` .. ``data_batch_5.bin`` for train, ``test_batch.bin`` for test,
        in that order. The files are not read.

    Raises
    ------
    DataError
        If the files are found nowhere and ``download`` is false (the message says where it
        looked and what to do), or the archive is corrupt, not the original (md5) or cannot be
        downloaded.
    ConfigError
        If ``split`` is not one of the accepted values.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "test_batch.bin").write_bytes(bytes(3073))
    >>> [p.name for p in locate_cifar_files("test", folder, download=False)]
    ['test_batch.bin']
    >>> locate_cifar_files("train", folder, download=False)
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: CIFAR-10 binary file(s) not found: data_batch_1.bin, ...
    looked in ... Downloading is off (download=False): ...
    """
    # CIFAR-10 has no validation split of its own (data.SPLITS has "valid" for the variations).
    split = check_choice("split", split, _SPLITS)
    parts = ["train", "test"] if split == "all" else [split]
    names = tuple(fn for part in parts for fn in _FILES[part])
    dirs = search_dirs(_NAME, data_dir)
    for d in dirs:
        found = _complete_set(d, names)
        if found is not None:
            return found
    cache = default_data_dir() / _NAME
    extracted = cache / _ARCHIVE_DIR
    archive = next((d / _ARCHIVE for d in dirs if (d / _ARCHIVE).is_file()), None)
    if archive is None:
        if not download:
            raise DataError(_not_found_message(names, dirs))
        archive = download_file(_URLS, cache / _ARCHIVE, _ARCHIVE_MD5, hint=_HINT_DATA_DIR)
    else:
        check_md5(archive, _ARCHIVE_MD5)
    _extract(archive, extracted)
    return [extracted / fn for fn in names]


def _not_found_message(names: tuple[str, ...], dirs: list[Path]) -> str:
    looked = ", ".join(f"{d}{'' if d.is_dir() else ' (does not exist)'}" for d in dirs)
    # The python release has the same batch names without ".bin"; say why it is not used.
    python_release = [
        str(p)
        for d in dirs
        for p in (d / "cifar-10-python.tar.gz", d / "cifar-10-batches-py", d / "data_batch_1")
        if p.exists()
    ]
    hint = (
        f" Found the python (pickle) release at {', '.join(python_release)}: it is not read, "
        "as loading it would unpickle; use the binary release."
        if python_release
        else ""
    )
    return (
        f"CIFAR-10 binary file(s) not found: {', '.join(names)}; looked in {looked}, for the "
        f"files themselves, in a {_ARCHIVE_DIR}/ subfolder, or as {_ARCHIVE}.{hint} "
        f"Downloading is off (download=False): get {_URLS[0]} (md5 {_ARCHIVE_MD5}) into a "
        "folder and pass data_dir (--data-dir DIR) or set CONTRACTIVE_DATA_DIR, or allow the "
        "download."
    )


def load_cifar_bw(
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Dataset:
    """Load CIFAR-10 gray-scaled, as the CAE paper's CIFAR-bw: 1024 values in [0, 1] per image.

    The batch files are located as :func:`locate_cifar_files` says, read with
    :func:`read_cifar_binary` and made gray with :func:`to_gray`
    (``gray = (0.299 R + 0.587 G + 0.114 B) / 255``; the paper does not state its formula).
    One batch is held as bytes at a time, converted into its rows of the result, so the peak
    memory is about the float32 result (205 MB for the 50000 training images) plus one batch.

    Parameters
    ----------
    split : {"train", "test", "all"}
        50000 training images (``data_batch_1.bin`` .. ``data_batch_5.bin`` in order), the
        10000 test images (``test_batch.bin``), or both, train first.
    data_dir : str or path-like, optional
        A folder holding the ``.bin`` files (directly or in ``cifar-10-batches-bin/``) or
        ``cifar-10-binary.tar.gz``, itself or in a subfolder ``cifar-10``. Looked at before
        ``CONTRACTIVE_DATA_DIR`` and the cache.
    download : bool
        Download the archive into ``default_data_dir() / "cifar-10"`` when nothing is found.

    Returns
    -------
    Dataset
        ``X`` ``(n, 1024)`` float32, ``y`` ``(n,)`` int64 labels (names in
        :data:`CIFAR10_CLASSES`), ``image_shape=(32, 32)``, ``name="cifar-bw"``, and the gray
        formula in ``provenance``.

    Raises
    ------
    DataError
        If the files are missing (and not downloaded), corrupt or not the original.
    ConfigError
        If ``split`` is not one of the accepted values.

    Examples
    --------
    Six tiny batch files of one record each, a pure red image labelled with the file's
    number:

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    >>> for label, name in enumerate(names):
    ...     red = bytes([255] * 1024 + [0] * 2048)
    ...     _ = (folder / name).write_bytes(bytes([label]) + red)
    >>> ds = load_cifar_bw("all", folder, download=False)
    >>> ds
    Dataset(name='cifar-bw', X=float32(6, 1024), y=int64(6,), image_shape=(32, 32))
    >>> ds.y.tolist(), round(float(ds.X.max()), 6)
    ([0, 1, 2, 3, 4, 5], 0.299)
    >>> load_cifar_bw("test", folder, download=False).n_samples
    1
    >>> ds.provenance
    'CIFAR-10 binary release, gray = 0.299 R + 0.587 G + 0.114 B'

    The real files (the archive, about 170 MB, is downloaded once):

    >>> load_cifar_bw("test")  # doctest: +SKIP
    Dataset(name='cifar-bw', X=float32(10000, 1024), y=int64(10000,), image_shape=(32, 32))
    """
    from contractive.data import Dataset

    paths = locate_cifar_files(split, data_dir, download)
    # Sizes first, so the result is allocated once; read_cifar_binary checks each file fully.
    sizes = []
    for p in paths:
        try:
            sizes.append(p.stat().st_size)
        except OSError as exc:
            raise DataError(f"{p} could not be read: {exc}") from exc
    counts = [size // _RECORD for size in sizes]
    n = sum(counts)
    X = np.empty((n, _SIDE * _SIDE), dtype=np.float32)  # (n, 1024)
    y = np.empty(n, dtype=np.int64)  # (n,)
    start = 0
    for p, count in zip(paths, counts, strict=True):
        images, labels = read_cifar_binary(p)  # (m, 3, 32, 32) uint8, (m,)
        if images.shape[0] != count:
            raise DataError(f"{p} changed while it was read ({count} records, then {len(labels)})")
        to_gray(images, out=X[start : start + count])
        y[start : start + count] = labels
        start += count
    return Dataset(X=X, y=y, image_shape=(_SIDE, _SIDE), name="cifar-bw", provenance=_PROVENANCE)
