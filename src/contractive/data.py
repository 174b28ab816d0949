"""Datasets for training autoencoders: built-in image sets and user files, as float32 arrays.

Everything is held in memory as one ``(n_samples, n_features)`` float32 array (a memory map
for ``.npy`` files opened with ``mmap=True``), so training can slice batches with numpy
indexing and no Python runs per sample.

Sources
-------
``"digits"``
    scikit-learn's bundled 8x8 digits (1797 images, no download). ``split="train"`` is the
    first 1437 samples of ``np.random.default_rng(0).permutation(1797)``, ``split="test"`` the
    remaining 360, ``split="all"`` all 1797 in the original order.
``"mnist"``, ``"fashion-mnist"``
    The four original IDX ``.gz`` files (60000 train and 10000 test images of 28x28 pixels),
    md5-checked. ``split="all"`` is train followed by test. Files are looked up, for each file
    in turn, in: the ``data_dir`` argument (the folder itself, then ``<data_dir>/<name>/``); the
    ``CONTRACTIVE_DATA_DIR`` environment variable (same two places); the cache folder
    ``default_data_dir() / <name>``. A file found nowhere is downloaded into the cache folder
    when ``download`` is true.
a ``.npy``, ``.npz`` or ``.csv`` path
    User data, returned unscaled unless ``scale="minmax"``; ``split`` is ignored.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import math
import os
import re
import sys
import warnings
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from contractive.exceptions import ConfigError, DataError
from contractive.validation import check_choice, check_int, check_real, is_int, parameter_error

__all__ = [
    "DATASETS",
    "Dataset",
    "check_unit_interval",
    "default_data_dir",
    "download_file",
    "draw_indices",
    "load_dataset",
    "parse_label_column",
    "read_idx",
    "train_validation_split",
]

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist")
"""Names of the built-in datasets that :func:`load_dataset` accepts."""

SPLITS: tuple[str, ...] = ("train", "test", "all")
SCALES: tuple[str, ...] = ("auto", "minmax", "none")
DATA_DIR_ENV = "CONTRACTIVE_DATA_DIR"

_FILE_SUFFIXES = (".npy", ".npz", ".csv")
_NPY_MAGIC = b"\x93NUMPY"
_DIGITS_N_TRAIN = 1437
_DOWNLOAD_TIMEOUT_S = 30.0
_DOWNLOAD_CHUNK = 1 << 20
# Bounds the temporaries of chunked scans (non-finite check, min-max scaling) to ~64 MiB of
# float32, whatever the dataset size, which matters for memory-mapped files.
_CHUNK_ELEMENTS = 1 << 24
_HINT_DATA_DIR = (
    "place the four files in a folder and pass --data-dir DIR or set CONTRACTIVE_DATA_DIR"
)

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# Same mirrors and checksums as torchvision.
_MIRRORS: dict[str, tuple[str, ...]] = {
    "mnist": (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
}
_MD5: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

# IDX type codes (third byte of the magic number); multi-byte types are big-endian.
_IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """A dataset held as one 2-D array of samples, with optional integer labels.

    Parameters
    ----------
    X : np.ndarray
        ``(n_samples, n_features)`` samples. Converted to C-contiguous float32 (no copy when
        it already is), except for a :class:`numpy.memmap`, which is kept as it is (read-only,
        in the file's dtype) so that nothing is loaded until a batch is sliced from it.
    y : np.ndarray or None
        ``(n_samples,)`` integer labels, stored as int64, or None.
    image_shape : tuple of int or None
        Shape of one sample as an image, e.g. ``(28, 28)`` (or ``(c, h, w)``), None for
        tabular data.
    name : str
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"``, or the file path it came from.

    Examples
    --------
    >>> import numpy as np
    >>> ds = Dataset(np.zeros((4, 3)), y=np.array([0, 1, 0, 1]), name="toy")
    >>> ds
    Dataset(name='toy', X=float32(4, 3), y=int64(4,), image_shape=None)
    >>> ds.n_samples, ds.n_features
    (4, 3)
    >>> ds.subset([1, 3]).y.tolist()
    [1, 1]
    """

    X: np.ndarray
    y: np.ndarray | None = None
    image_shape: tuple[int, ...] | None = None
    name: str = "array"

    def __post_init__(self) -> None:
        X = self.X
        if not isinstance(X, np.memmap):
            X = np.ascontiguousarray(X, dtype=np.float32)
            # Frozen dataclass: coercing a field has to bypass the generated __setattr__.
            object.__setattr__(self, "X", X)
        if X.ndim != 2:
            raise DataError(
                f"{self.name}: X must be 2-D (n_samples, n_features), got shape {X.shape}"
            )
        if self.y is not None:
            y = np.asarray(self.y)
            if y.dtype.kind not in "iu":
                raise DataError(f"{self.name}: labels must be integers, got dtype {y.dtype}")
            if y.shape != (X.shape[0],):
                raise DataError(
                    f"{self.name}: labels have shape {y.shape}, expected ({X.shape[0]},)"
                )
            object.__setattr__(self, "y", y.astype(np.int64, copy=False))
        if self.image_shape is not None:
            shape = tuple(int(s) for s in self.image_shape)
            if math.prod(shape) != X.shape[1]:
                raise DataError(
                    f"{self.name}: image_shape {shape} does not hold {X.shape[1]} features"
                )
            object.__setattr__(self, "image_shape", shape)

    @property
    def n_samples(self) -> int:
        """Number of samples (rows of ``X``)."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of features per sample (columns of ``X``)."""
        return int(self.X.shape[1])

    def subset(self, indices: npt.ArrayLike | slice) -> Dataset:
        """Return the samples at ``indices`` as a new in-memory dataset.

        Parameters
        ----------
        indices : array-like of int, boolean mask, or slice
            Rows to keep, in that order.

        Returns
        -------
        Dataset
            A copy with float32 ``X`` (rows of a memory-mapped ``X`` are read and converted),
            the matching labels, and the same ``image_shape`` and ``name``.

        Examples
        --------
        >>> ds = load_dataset("digits", split="test")
        >>> ds.subset(np.arange(10)).X.shape
        (10, 64)
        """
        if not isinstance(indices, slice):
            indices = np.asarray(indices)
            if indices.size == 0:
                # np.asarray([]) is float64, which numpy refuses as an index.
                indices = indices.astype(np.intp)
        X = np.ascontiguousarray(self.X[indices], dtype=np.float32)
        y = None if self.y is None else self.y[indices]
        return Dataset(X=X, y=y, image_shape=self.image_shape, name=self.name)

    def __repr__(self) -> str:
        y = "None" if self.y is None else f"{self.y.dtype}{self.y.shape}"
        kind = "memmap " if isinstance(self.X, np.memmap) else ""
        return (
            f"Dataset(name={self.name!r}, X={kind}{self.X.dtype}{self.X.shape}, y={y}, "
            f"image_shape={self.image_shape})"
        )


def default_data_dir() -> Path:
    """Return the cache folder that downloaded datasets go into.

    This is ``$XDG_CACHE_HOME/contractive`` when ``XDG_CACHE_HOME`` is set to an absolute
    path, otherwise ``~/.cache/contractive``. Each dataset has its own subfolder (e.g.
    ``mnist``). The folder is not created here.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> default_data_dir().name
    'contractive'
    """
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "contractive"


def load_dataset(
    source: str | os.PathLike[str],
    *,
    split: str = "train",
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
    scale: str = "auto",
    label_column: str | int | None = None,
    mmap: bool = False,
) -> Dataset:
    """Load a built-in dataset or a user file as a :class:`Dataset`.

    Parameters
    ----------
    source : str or path-like
        ``"digits"``, ``"mnist"``, ``"fashion-mnist"`` (case-insensitive), or the path of a
        ``.npy``, ``.npz`` or ``.csv`` file.
    split : {"train", "test", "all"}
        Part of a built-in dataset (see the module docstring for digits' fixed split).
        Ignored for files, which are always loaded whole.
    data_dir : str or path-like, optional
        Folder holding the MNIST / Fashion-MNIST ``.gz`` files, directly or in a subfolder
        named after the dataset. Looked at before ``CONTRACTIVE_DATA_DIR`` and the cache.
    download : bool
        Download missing MNIST / Fashion-MNIST files into ``default_data_dir() / name``.
    scale : {"auto", "minmax", "none"}
        ``"auto"``: built-in images divided by their maximum pixel value (255, or 16 for
        digits) into [0, 1]; user data unchanged. ``"minmax"``: each feature mapped to
        [0, 1] by its own min and max (constant features become 0). ``"none"``: raw values.
    label_column : str or int, optional
        For ``.csv``: the column holding integer labels, by header name or by index
        (negative counts from the end; a string of digits is taken as an index when it is
        not a header name). It is removed from ``X``. For ``.npz``: the name of the label
        array. Not accepted for other sources.
    mmap : bool
        Memory-map a ``.npy`` file instead of reading it: ``X`` is then a read-only
        :class:`numpy.memmap` in the file's dtype (converted to float32 per batch by the
        caller), and ``scale="minmax"`` is refused. Non-finite values are still looked for,
        in chunks, so the whole file is read once (memory use stays bounded); integer files
        need no such scan. Ignored for other sources.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        When the source is unknown, missing, unreadable, corrupt, or holds values that are
        not finite numbers, or arrays of the wrong shape.
    ConfigError
        When ``split`` or ``scale`` is not one of the accepted values, or ``label_column``
        (or ``mmap`` with ``scale="minmax"``) does not apply to the source.

    Examples
    --------
    >>> ds = load_dataset("digits")
    >>> ds.X.shape, ds.X.dtype, ds.image_shape, ds.name
    ((1437, 64), dtype('float32'), (8, 8), 'digits')
    >>> float(ds.X.min()), float(ds.X.max())
    (0.0, 1.0)
    >>> float(load_dataset("digits", split="test", scale="none").X.max())
    16.0
    """
    split = check_choice("split", split, SPLITS)
    scale = check_choice("scale", scale, SCALES)
    if is_int(label_column):
        label_column = int(label_column)
    elif not (label_column is None or isinstance(label_column, str)):
        raise parameter_error(
            "label_column", "a str (a column name), an int (a column index) or None", label_column
        )
    text = os.fspath(source)
    known = text.strip().lower()
    if known in DATASETS:
        if label_column is not None:
            raise ConfigError(
                f"label_column applies to .csv and .npz files, not to the {known} dataset"
            )
        if known == "digits":
            return _load_digits(split, scale)
        return _load_idx_dataset(known, split, data_dir, download, scale)

    path = Path(text).expanduser()
    suffix = path.suffix.lower()
    if suffix not in _FILE_SUFFIXES:
        if path.exists():
            raise DataError(
                f"Unsupported file type {suffix or '(none)'!r} for {text}: expected a .npy, "
                ".npz or .csv file."
            )
        raise DataError(
            f"Unknown dataset {text!r}: expected one of {', '.join(DATASETS)}, or a path to "
            "a .npy, .npz or .csv file."
        )
    if not path.is_file():
        raise DataError(f"No such file: {text}")
    if path.stat().st_size == 0:
        raise DataError(f"{text} is empty")
    if mmap and suffix == ".npy" and scale == "minmax":
        raise ConfigError(
            'scale="minmax" needs the whole array in memory, so it cannot be combined with '
            "mmap=True: scale the data beforehand or drop mmap"
        )

    if suffix == ".npy":
        if label_column is not None:
            raise ConfigError(
                f"label_column does not apply to {text}: a .npy file holds one array and no "
                "labels (use a .npz file with X and y arrays)"
            )
        if mmap:
            return _load_npy_mmap(path, text)
        arr = _np_load(path, text)
        X, image_shape = _as_samples(arr, text)
        y = None
    elif suffix == ".npz":
        X, y, image_shape = _load_npz(path, text, label_column)
    else:
        X, y = _load_csv(path, text, label_column)
        image_shape = None
    _check_finite(X, text)
    if scale == "minmax":
        _minmax_scale_(X)
    return Dataset(X=X, y=y, image_shape=image_shape, name=text)


def parse_label_column(value: str | int | None) -> str | int | None:
    """A label column given as text (config, command line) as :func:`load_dataset` takes it.

    Text that is a whole number (digits, with an optional leading minus sign) is a column
    index; any other text is a column name (``.csv`` header) or an array name (``.npz``).
    Config files and ``--label-column`` give text, so ``"3"`` reaches ``load_dataset`` as the
    index ``3``: for a ``.npz`` file that is refused with a clear message, rather than looked
    up as an array named ``"3"``.

    Examples
    --------
    >>> parse_label_column("3"), parse_label_column("-1"), parse_label_column(2)
    (3, -1, 2)
    >>> parse_label_column("label"), parse_label_column(None)
    ('label', None)
    """
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    return value


def check_unit_interval(X: np.ndarray, name: str) -> None:
    """Raise :class:`DataError` if any value of ``X`` lies outside [0, 1].

    Binary cross-entropy treats inputs as probabilities, so training calls this when the
    loss is ``"bce"``.

    Parameters
    ----------
    X : np.ndarray
        The samples (any shape; a memory map is read through once).
    name : str
        How to name the data in the message, e.g. the file path.

    Examples
    --------
    >>> check_unit_interval(np.array([[0.0, 0.5, 1.0]]), "ok.csv")
    >>> check_unit_interval(np.array([[-0.5, 3.0]]), "data.csv")
    Traceback (most recent call last):
    ...
    contractive.exceptions.DataError: data.csv has values outside [0, 1] (min -0.5, max 3.0), \
which binary cross-entropy cannot take: pass scale="minmax" (--scale minmax) or use loss="mse".
    """
    if X.size == 0:
        return
    lo, hi = float(np.min(X)), float(np.max(X))
    if lo < 0.0 or hi > 1.0:
        raise DataError(
            f"{name} has values outside [0, 1] (min {_fmt(lo)}, max {_fmt(hi)}), which binary "
            'cross-entropy cannot take: pass scale="minmax" (--scale minmax) or use loss="mse".'
        )


def train_validation_split(
    n: int, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into training and validation indices at random.

    The indices are permuted with ``np.random.default_rng(seed)``; the last
    ``ceil(n * validation_fraction)`` of the permutation are the validation set. Both
    arrays are returned sorted, so that slicing a memory-mapped file reads it in order.

    Parameters
    ----------
    n : int
        Number of samples.
    validation_fraction : float
        Share of samples held out, in [0, 1). 0 gives an empty validation set.
    seed : int
        Seed of the permutation.

    Returns
    -------
    train, validation : np.ndarray
        int64 index arrays that together hold each of ``0 .. n-1`` once.

    Examples
    --------
    >>> train, val = train_validation_split(10, 0.2, seed=0)
    >>> len(train), len(val), sorted(np.concatenate([train, val]).tolist()) == list(range(10))
    (8, 2, True)
    >>> train_validation_split(5, 0.0, seed=0)[1].size
    0
    """
    # Checked, not converted: the rounding below is for the numbers as they were given.
    check_int("n", n, low=0)
    check_real("validation_fraction", validation_fraction, low=0, high=1, closed="left")
    # Rounding first keeps float noise (0.7 * 10 == 7.000000000000001) from adding a sample.
    n_val = math.ceil(round(n * validation_fraction, 9))
    if n > 0 and n_val >= n:
        raise DataError(
            f"validation_fraction {validation_fraction} of {n} samples leaves none to train on"
        )
    perm = np.random.default_rng(seed).permutation(int(n)).astype(np.int64)
    n_train = int(n) - n_val
    return np.sort(perm[:n_train]), np.sort(perm[n_train:])


def draw_indices(n_samples: int, n: int, seed: int) -> np.ndarray:
    """``min(n, n_samples)`` distinct indices of ``range(n_samples)`` drawn at random, sorted.

    How the report and ``contractive sample`` pick their points:
    ``np.random.default_rng(seed).choice`` without replacement, so equal seeds pick equal
    points; all of them when there are at most ``n``.

    Examples
    --------
    >>> draw_indices(10, 3, seed=0)
    array([5, 6, 9])
    >>> draw_indices(4, 10, seed=0)
    array([0, 1, 2, 3])
    """
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_samples, size=min(n, n_samples), replace=False))


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzip-compressed or raw.

    The magic number is two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte,
    0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64) and the number of dimensions,
    followed by one big-endian uint32 per dimension and the data. Compression is detected
    from the content, not the file name.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    np.ndarray
        A writable array of the stored shape, in native byte order.

    Raises
    ------
    DataError
        If the file is not valid gzip, not IDX, or its data is shorter or longer than its
        dimensions say.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "tiny-idx1-ubyte"
    >>> _ = p.write_bytes(bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx(p)
    array([7, 8, 9], dtype=uint8)
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path} could not be read: {exc}") from exc
    compressed = data[:2] == b"\x1f\x8b"
    if compressed:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            # BadGzipFile is an OSError; a cut-off stream raises EOFError, a damaged one
            # zlib.error.
            raise DataError(f"{path} is not a valid gzip file ({exc})") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        if not compressed and path.suffix.lower() == ".gz":
            raise DataError(f"{path} is not a valid gzip file (no gzip header)")
        raise DataError(
            f"{path} is not an IDX file: its magic number is {data[:4].hex() or 'missing'}"
        )
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated: its header needs {header} bytes, found {len(data)}")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header
    if found != expected:
        what = "is truncated" if found < expected else "has trailing bytes"
        raise DataError(
            f"{path} {what}: shape {shape} needs {expected} bytes of data, found {found}"
        )
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    # astype copies, which also makes the result writable (frombuffer on bytes is not).
    return arr.astype(dtype.newbyteorder("="))


def download_file(
    url: str | Sequence[str],
    dest: str | os.PathLike[str],
    md5: str,
    *,
    timeout: float = _DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download a file, verify its md5, and move it into place atomically.

    Each URL is tried in turn. The bytes are streamed into a temporary file in the folder of
    ``dest``, and only a file with the expected md5 is renamed to ``dest`` (``os.replace``),
    so an interrupted or corrupt download never leaves a file at ``dest``. A progress bar is
    shown when stderr is a terminal.

    Parameters
    ----------
    url : str or sequence of str
        One URL, or mirrors to try in order (any scheme ``urllib`` opens, ``file://`` too).
    dest : str or path-like
        Where the file goes; missing parent folders are created.
    md5 : str
        Expected hex md5 of the file.
    timeout : float
        Seconds to wait for the connection and for each read.

    Returns
    -------
    pathlib.Path
        ``dest``.

    Raises
    ------
    DataError
        If no URL gave the file with the right md5; the message lists each URL and why.

    Examples
    --------
    A ``file://`` URL goes through the same checks as a download:

    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> source = folder / "source.bin"
    >>> _ = source.write_bytes(b"contractive")
    >>> md5 = "8e68ecbca2c39862a6e19d795bd896cd"  # of b"contractive"
    >>> download_file(source.as_uri(), folder / "copy" / "data.bin", md5).read_bytes()
    b'contractive'
    >>> download_file(source.as_uri(), folder / "bad.bin", "0" * 32)
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: Could not download bad.bin; tried file:///...source.bin
    (got md5 8e68ecbca2c39862a6e19d795bd896cd, expected 00000000000000000000000000000000). ...
    >>> sorted(p.name for p in folder.iterdir())  # no partial file is left behind
    ['copy', 'source.bin']

    From the network (skipped here: the tests run offline):

    >>> download_file(  # doctest: +SKIP
    ...     "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
    ...     folder / "t10k-labels-idx1-ubyte.gz",
    ...     "ec29112dd5afa0611ce80d1b7f02629c",
    ... ).name
    't10k-labels-idx1-ubyte.gz'
    """
    import urllib.request

    from tqdm import tqdm

    from .runs import atomic_writer  # torch, which runs imports, is not needed before here

    urls = [url] if isinstance(url, str) else list(url)
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for u in urls:
        try:
            # The file replaces ``dest`` only if the with-block ends without an error.
            with atomic_writer(dest, suffix=".part") as out:
                digest = hashlib.md5(usedforsecurity=False)
                with urllib.request.urlopen(u, timeout=timeout) as resp:
                    length = resp.headers.get("Content-Length") if resp.headers else None
                    total = int(length) if length and str(length).isdigit() else None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=dest.name,
                        disable=not sys.stderr.isatty(),
                        leave=False,
                    ) as bar:
                        while chunk := resp.read(_DOWNLOAD_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            bar.update(len(chunk))
                got = digest.hexdigest()
                if got != md5:
                    raise _WrongMd5(f"{u} (got md5 {got}, expected {md5})")
            return dest
        except _WrongMd5 as exc:
            failures.append(str(exc))
        except (OSError, ValueError) as exc:
            # URLError, HTTPError, timeouts and connection resets are all OSErrors; a
            # malformed URL is a ValueError.
            failures.append(f"{u} ({exc})")
    raise DataError(
        f"Could not download {dest.name}; tried {'; '.join(failures)}. Without network, "
        f"{_HINT_DATA_DIR}."
    )


class _WrongMd5(Exception):
    """A download finished with other bytes than expected; it is not kept."""


def _fmt(v: float) -> str:
    s = f"{v:.6g}"
    return s if any(c in s for c in ".eni") else s + ".0"


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while chunk := f.read(_DOWNLOAD_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(path: Path, want: str, got: str | None = None) -> None:
    got = _md5_of(path) if got is None else got
    if got != want:
        raise DataError(
            f"{path} has md5 {got}, expected {want}: the file is corrupt or not the original; "
            "delete it and download again."
        )


def _load_digits(split: str, scale: str) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    data = np.asarray(bunch.data)
    target = np.asarray(bunch.target)
    if split != "all":
        perm = np.random.default_rng(0).permutation(data.shape[0])
        idx = perm[:_DIGITS_N_TRAIN] if split == "train" else perm[_DIGITS_N_TRAIN:]
        data, target = data[idx], target[idx]
    X = np.ascontiguousarray(data, dtype=np.float32)
    _scale_images_(X, scale, 16.0)
    return Dataset(X=X, y=target.astype(np.int64), image_shape=(8, 8), name="digits")


def _scale_images_(X: np.ndarray, scale: str, max_value: float) -> None:
    if scale == "auto":
        # Division (not multiplication by 1/max) keeps max_value / max_value exactly 1.
        np.divide(X, max_value, out=X)
    elif scale == "minmax":
        _minmax_scale_(X)


def _search_dirs(name: str, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    roots: list[Path] = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    env = os.environ.get(DATA_DIR_ENV, "")
    if env:
        roots.append(Path(env).expanduser())
    dirs: list[Path] = []
    for root in roots:
        for d in (root, root / name):
            if d not in dirs:
                dirs.append(d)
    cache = default_data_dir() / name
    if cache not in dirs:
        dirs.append(cache)
    return dirs


def _locate_idx_files(
    name: str, files: Sequence[str], data_dir: str | os.PathLike[str] | None, download: bool
) -> dict[str, Path]:
    dirs = _search_dirs(name, data_dir)
    md5s = _MD5[name]
    found: dict[str, Path] = {}
    missing: list[str] = []
    for fn in files:
        hit = next((d / fn for d in dirs if (d / fn).is_file()), None)
        if hit is None:
            missing.append(fn)
        else:
            found[fn] = hit
    # Verify what is there before any download, so a corrupt user file fails fast.
    for fn, p in found.items():
        got = _md5_of(p)
        other = next((o for o in _MD5 if o != name and _MD5[o][fn] == got), None)
        if other is not None:
            raise DataError(
                f"{p} is the {other} file of that name, not the {name} one: point data_dir "
                f"(--data-dir) or CONTRACTIVE_DATA_DIR at the {name} files"
            )
        _check_md5(p, md5s[fn], got)
    if missing and not download:
        looked = ", ".join(f"{d}{'' if d.is_dir() else ' (does not exist)'}" for d in dirs)
        raise DataError(
            f"{name} file(s) not found: {', '.join(missing)}; looked in {looked}. "
            f"Downloading is off (download=False): {_HINT_DATA_DIR}, or allow the download."
        )
    cache = default_data_dir() / name
    for fn in missing:
        urls = [mirror + fn for mirror in _MIRRORS[name]]
        found[fn] = download_file(urls, cache / fn, md5s[fn])
    return found


def _load_idx_dataset(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
    download: bool,
    scale: str,
) -> Dataset:
    parts = ["train", "test"] if split == "all" else [split]
    needed = [fn for part in parts for fn in _IDX_FILES[part]]
    paths = _locate_idx_files(name, needed, data_dir, download)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for part in parts:
        img_path, lab_path = (paths[fn] for fn in _IDX_FILES[part])
        img = read_idx(img_path)
        lab = read_idx(lab_path)
        if img.ndim != 3:
            raise DataError(f"{img_path} holds shape {img.shape}, expected (n, height, width)")
        if lab.ndim != 1:
            raise DataError(f"{lab_path} holds shape {lab.shape}, expected (n,)")
        if img.shape[0] != lab.shape[0]:
            raise DataError(
                f"{img_path} has {img.shape[0]} images but {lab_path} has {lab.shape[0]} labels"
            )
        images.append(img)
        labels.append(lab)
    if len({img.shape[1:] for img in images}) != 1:
        raise DataError(f"{name}: train and test images differ in size")
    stack = images[0] if len(images) == 1 else np.concatenate(images)
    if stack.shape[0] == 0:
        raise DataError(f"{paths[needed[0]]} has no rows")
    X = np.ascontiguousarray(stack.reshape(stack.shape[0], -1), dtype=np.float32)
    _scale_images_(X, scale, 255.0)
    y = np.concatenate(labels).astype(np.int64)
    return Dataset(X=X, y=y, image_shape=tuple(stack.shape[1:]), name=name)


def _np_load(path: Path, name: str) -> Any:
    _check_signature(path, name, "read")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{name} could not be read as a {path.suffix} file: {_why(exc)}") from exc


def _check_signature(path: Path, name: str, verb: str) -> None:
    """Refuse a file that is not what its suffix says before NumPy guesses at it.

    Without this, np.load takes any file that is neither .npy nor zip for a pickle and answers
    with advice to unpickle it, which is the one thing never to do with an unknown file.
    """
    if path.suffix.lower() == ".npz":
        if not zipfile.is_zipfile(path):
            raise DataError(
                f"{name} could not be {verb} as a .npz file: it is not a zip archive (it is "
                "truncated, or another format named .npz); write it with numpy.savez"
            )
        return
    with path.open("rb") as fh:
        head = fh.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        raise DataError(
            f"{name} could not be {verb} as a .npy file: it does not start with the NumPy "
            "header (it is another format named .npy, or damaged); write it with numpy.save"
        )


def _why(exc: BaseException) -> str:
    """NumPy's reason for refusing a file, without its advice to allow pickles."""
    text = str(exc)
    if "pickle" in text:
        return (
            "it holds Python objects (pickled data), which contractive never loads because "
            "unpickling can run code; save a numeric array instead"
        )
    return text


def _check_numeric(arr: np.ndarray, name: str) -> None:
    if arr.dtype.kind not in "biuf":
        raise DataError(f"{name} holds {arr.dtype} values, expected numbers")


def _sample_shape(arr: np.ndarray, name: str) -> tuple[int, ...] | None:
    """Check ``arr`` is a 2-D table or a 3-D/4-D image stack; return the image shape."""
    if arr.ndim not in (2, 3, 4):
        hint = ": reshape it to (n_samples, 1) or (1, n_features)" if arr.ndim == 1 else ""
        raise DataError(
            f"{name} holds an array of shape {arr.shape}; expected 2-D (n_samples, "
            f"n_features), 3-D (n, height, width) or 4-D (n, channels, height, width){hint}"
        )
    if arr.shape[0] == 0:
        raise DataError(f"{name} has no rows (shape {arr.shape})")
    if math.prod(arr.shape[1:]) == 0:
        raise DataError(f"{name} has no features (shape {arr.shape})")
    return tuple(int(s) for s in arr.shape[1:]) if arr.ndim > 2 else None


def _as_samples(arr: np.ndarray, name: str) -> tuple[np.ndarray, tuple[int, ...] | None]:
    _check_numeric(arr, name)
    image_shape = _sample_shape(arr, name)
    # Values beyond float32's range become inf, which _check_finite reports as too large.
    with np.errstate(over="ignore"):
        X = np.ascontiguousarray(arr.reshape(arr.shape[0], -1), dtype=np.float32)
    return X, image_shape


def _check_finite(X: np.ndarray, name: str) -> None:
    if X.dtype.kind != "f":
        return
    rows = max(1, _CHUNK_ELEMENTS // max(1, X.shape[1]))
    count = 0
    first = -1
    for start in range(0, X.shape[0], rows):
        bad = ~np.isfinite(X[start : start + rows])
        n_bad = int(np.count_nonzero(bad))
        if n_bad:
            if first < 0:
                first = start + int(np.argmax(bad.any(axis=1)))
            count += n_bad
    if count:
        raise DataError(
            f"{name} has {count} non-finite value{'s' if count > 1 else ''} (NaN, infinity, or "
            f"too large for float32); the first is in row {first} (counting from 0)"
        )


def _minmax_scale_(X: np.ndarray) -> None:
    """Scale each column of the float32 array ``X`` to [0, 1] in place."""
    lo = X.min(axis=0).astype(np.float64)
    span = X.max(axis=0).astype(np.float64) - lo
    # Constant columns: x - lo is 0, and a span of 1 keeps it 0 instead of 0/0.
    span[span == 0.0] = 1.0
    # float64 arithmetic, chunked to bound the temporary: exact enough that results stay in
    # [0, 1], and immune to the overflow of hi - lo in float32.
    rows = max(1, _CHUNK_ELEMENTS // max(1, X.shape[1]))
    for start in range(0, X.shape[0], rows):
        block = X[start : start + rows]
        block[...] = (block - lo) / span


def _load_npy_mmap(path: Path, name: str) -> Dataset:
    _check_signature(path, name, "memory-mapped")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{name} could not be memory-mapped as a .npy file: {_why(exc)}") from exc
    _check_numeric(arr, name)
    image_shape = _sample_shape(arr, name)
    if not arr.flags.c_contiguous:
        raise DataError(
            f"{name} is stored in Fortran order, which cannot be memory-mapped row by row: "
            "save it again with np.save(path, np.ascontiguousarray(X)) or drop mmap"
        )
    X = arr.reshape(arr.shape[0], -1)
    _check_finite(X, name)
    return Dataset(X=X, y=None, image_shape=image_shape, name=name)


def _load_npz(
    path: Path, name: str, label_column: str | int | None
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...] | None]:
    if isinstance(label_column, int):
        raise ConfigError(
            f"for a .npz file, label_column names the label array; got the index {label_column}"
        )
    npz = _np_load(path, name)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{name} is not a .npz archive")
    with npz:
        keys = list(npz.files)
        if not keys:
            raise DataError(f"{name} is empty: it holds no arrays")
        listing = ", ".join(keys)
        if label_column is not None:
            if label_column not in keys:
                raise DataError(
                    f"{name} has no array named {label_column!r}; its arrays are: {listing}"
                )
            y_key: str | None = label_column
        else:
            y_key = next((k for k in ("y", "labels", "target") if k in keys), None)
        rest = [k for k in keys if k != y_key]
        x_key: str | None = next((k for k in ("X", "x", "data") if k in rest), None)
        if x_key is None and len(rest) == 1:
            x_key = rest[0]
        if x_key is None:
            raise DataError(
                f"{name} holds the arrays {listing}; expected one named X, x or data (and "
                "optionally y, labels or target)"
            )
        try:
            x_arr = npz[x_key]
            y_arr = None if y_key is None else npz[y_key]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(f"{name} could not be read: {_why(exc)}") from exc
    X, image_shape = _as_samples(x_arr, f"{name} (array {x_key!r})")
    y = None
    if y_arr is not None:
        desc = f"{name} (array {y_key!r})"
        if y_arr.ndim == 2 and y_arr.shape[1] == 1:
            y_arr = y_arr[:, 0]
        if y_arr.shape != (X.shape[0],):
            raise DataError(f"{desc} has shape {y_arr.shape}, expected ({X.shape[0]},) labels")
        _check_numeric(y_arr, desc)
        y = _as_labels(y_arr, desc)
    return X, y, image_shape


def _as_labels(values: np.ndarray, desc: str) -> np.ndarray:
    if values.dtype.kind in "biu":
        return values.astype(np.int64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) > 2.0**24)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{desc} holds labels that are not integers (first in row {i}: {values[i]!r}); "
            "labels must be whole numbers"
        )
    return values.astype(np.int64)


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _csv_lines(path: Path) -> Any:
    # errors="replace" so that the diagnostics still run on a file that is not UTF-8.
    return path.open(encoding="utf-8-sig", errors="replace", newline="")


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def _load_csv(
    path: Path, name: str, label_column: str | int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    header_fields: list[str] | None = None
    skiprows = 0
    with _csv_lines(path) as f:
        for lineno, raw in enumerate(f, start=1):
            line = _strip_comment(raw)
            if not line:
                continue
            fields = [s.strip() for s in next(csv.reader([line]))]
            if not all(_is_number(s) for s in fields):
                header_fields, skiprows = fields, lineno
            break
        else:
            raise DataError(f"{name} is empty")

    try:
        with warnings.catch_warnings():
            # loadtxt warns on a file with no data rows; that case is an error below.
            warnings.simplefilter("ignore", UserWarning)
            data = np.loadtxt(
                path,
                delimiter=",",
                dtype=np.float32,
                skiprows=skiprows,
                ndmin=2,
                encoding="utf-8-sig",
                comments="#",
            )
    except ValueError as exc:
        raise _locate_csv_error(path, name, skiprows, header_fields, exc) from exc
    if data.shape[0] == 0:
        raise DataError(f"{name} has no data rows")
    n_cols = data.shape[1]
    if header_fields is not None and len(header_fields) != n_cols:
        raise DataError(
            f"{name}: the header has {len(header_fields)} names but the rows have {n_cols} fields"
        )
    if label_column is None:
        return data, None
    col = _resolve_label_column(label_column, header_fields, n_cols, name)
    col_name = f"{header_fields[col]!r}" if header_fields is not None else str(col)
    y = _as_labels(data[:, col], f"{name} (label column {col_name})")
    X = np.delete(data, col, axis=1)
    if X.shape[1] == 0:
        raise DataError(f"{name} has no features besides the label column {col_name}")
    return X, y


def _resolve_label_column(
    label_column: str | int, header: list[str] | None, n_cols: int, name: str
) -> int:
    if isinstance(label_column, str):
        if header is not None and label_column in header:
            return header.index(label_column)
        text = label_column.strip()
        if text.lstrip("+-").isdigit():
            label_column = int(text)
        elif header is not None:
            shown = header if len(header) <= 20 else [*header[:20], f"... ({len(header)} in all)"]
            raise DataError(
                f"label_column {label_column!r} is not a column of {name}; its columns are: "
                f"{', '.join(shown)}"
            )
        else:
            raise DataError(
                f"label_column {label_column!r} is a column name, but {name} has no header "
                f"line: pass a column index instead (0 to {n_cols - 1}, or negative from the end)"
            )
    if not -n_cols <= label_column < n_cols:
        raise DataError(f"label_column {label_column} is out of range: {name} has {n_cols} columns")
    return label_column % n_cols


def _locate_csv_error(
    path: Path, name: str, skiprows: int, header: list[str] | None, exc: ValueError
) -> DataError:
    """Find the line and column loadtxt choked on (error path only, so Python speed is fine)."""
    expected: int | None = None
    with _csv_lines(path) as f:
        for lineno, raw in enumerate(f, start=1):
            if lineno <= skiprows:
                continue
            line = _strip_comment(raw)
            if not line:
                continue
            fields = line.split(",")
            if expected is None:
                expected = len(fields)
            if len(fields) != expected:
                return DataError(
                    f"{name}, line {lineno}: expected {expected} fields, found {len(fields)}"
                )
            for i, field in enumerate(fields):
                if not _is_number(field):
                    col = f"column {i + 1}"
                    if header is not None and i < len(header):
                        col += f" ({header[i]!r})"
                    value = field.strip()
                    what = "is empty" if not value else f"holds {value!r}, which is not a number"
                    return DataError(f"{name}, line {lineno}, {col} {what}")
    return DataError(f"{name} could not be read as a numeric CSV file: {exc}")
