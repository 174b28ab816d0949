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
``"mnist-basic"``, ``"mnist-rot"``, ``"mnist-bg-rand"``, ``"mnist-bg-img"``, ... ``"convex"``
    The MNIST variations and shape sets of Larochelle et al. (2007) that Table 2 of the CAE
    paper uses (the names in :data:`OWN_VALIDATION`; :mod:`contractive.variations`): read
    from the original ``.amat`` files when they are found (as for MNIST), otherwise
    regenerated from a seed and cached. They have their own validation split,
    ``split="valid"``.
``"cifar-bw"``
    CIFAR-10's binary release in gray, 50000 train and 10000 test images of 32x32 pixels
    (:mod:`contractive.cifar`).
a ``.npy``, ``.npz`` or ``.csv`` path
    User data, returned unscaled unless ``scale="minmax"``; ``split`` is ignored.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from contractive.datafiles import minmax_scale_, read_data_file
from contractive.exceptions import ConfigError, DataError
from contractive.idx import DATA_DIR_ENV as DATA_DIR_ENV
from contractive.idx import default_data_dir, download_file, load_idx_images, read_idx
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

#: The datasets with their own validation split (``split="valid"``): the names of
#: :data:`contractive.variations.VARIATIONS` (a test keeps the two lists equal; importing that
#: module here would be circular).
OWN_VALIDATION: tuple[str, ...] = (
    "mnist-basic",
    "mnist-rot",
    "mnist-bg-rand",
    "mnist-bg-img",
    "mnist-rot-bg-img",
    "rectangles",
    "rectangles-img",
    "convex",
)

DATASETS: tuple[str, ...] = ("digits", "mnist", "fashion-mnist", "cifar-bw", *OWN_VALIDATION)
"""Names of the built-in datasets that :func:`load_dataset` accepts."""

SPLITS: tuple[str, ...] = ("train", "valid", "test", "all")
SCALES: tuple[str, ...] = ("auto", "minmax", "none")

_FILE_SUFFIXES = (".npy", ".npz", ".csv")
_DIGITS_N_TRAIN = 1437


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
    provenance : str or None
        Where the data came from when its name does not say it all, e.g. that a variation of
        MNIST was regenerated (comparable to, but not the same as, the original files).

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
    provenance: str | None = None

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
        return Dataset(
            X=X, y=y, image_shape=self.image_shape, name=self.name, provenance=self.provenance
        )

    def __repr__(self) -> str:
        y = "None" if self.y is None else f"{self.y.dtype}{self.y.shape}"
        kind = "memmap " if isinstance(self.X, np.memmap) else ""
        return (
            f"Dataset(name={self.name!r}, X={kind}{self.X.dtype}{self.X.shape}, y={y}, "
            f"image_shape={self.image_shape})"
        )


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
        A name in :data:`DATASETS` (case-insensitive), or the path of a ``.npy``, ``.npz`` or
        ``.csv`` file.
    split : {"train", "valid", "test", "all"}
        Part of a built-in dataset (see the module docstring for digits' fixed split).
        ``"valid"`` exists for the datasets with their own validation split
        (:data:`OWN_VALIDATION`); their ``"train"`` is then the training rows without it.
        Ignored for files, which are always loaded whole.
    data_dir : str or path-like, optional
        Folder holding the dataset's files (MNIST's ``.gz``, the variations' ``.amat``,
        CIFAR-10's binary release), directly or in a subfolder named after the dataset.
        Looked at before ``CONTRACTIVE_DATA_DIR`` and the cache.
    download : bool
        Download missing MNIST / Fashion-MNIST / CIFAR-10 files into
        ``default_data_dir() / name`` (the variations are regenerated from MNIST instead).
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
        if split == "valid" and known not in OWN_VALIDATION:
            raise ConfigError(
                f"split='valid' applies to the datasets with their own validation split "
                f"({', '.join(OWN_VALIDATION)}); {known} has train and test only"
            )
        if known == "digits":
            return _load_digits(split, scale)
        if known in ("mnist", "fashion-mnist"):
            return _load_idx_dataset(known, split, data_dir, download, scale)
        if known == "cifar-bw":
            from contractive.cifar import load_cifar_bw

            ds = load_cifar_bw(split, data_dir=data_dir, download=download)
        else:
            from contractive.variations import load_variation

            ds = load_variation(known, split, data_dir=data_dir, download=download)
        # Both are floats in [0, 1] already: "auto" and "none" keep them as they are.
        if scale == "minmax":
            minmax_scale_(ds.X)
        return ds

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

    X, y, image_shape = read_data_file(path, text, label_column, mmap=mmap)
    if scale == "minmax":
        minmax_scale_(X)
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


def _fmt(v: float) -> str:
    s = f"{v:.6g}"
    return s if any(c in s for c in ".eni") else s + ".0"


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
        minmax_scale_(X)


def _load_idx_dataset(
    name: str,
    split: str,
    data_dir: str | os.PathLike[str] | None,
    download: bool,
    scale: str,
) -> Dataset:
    stack, y = load_idx_images(name, split, data_dir, download)
    X = np.ascontiguousarray(stack.reshape(stack.shape[0], -1), dtype=np.float32)
    _scale_images_(X, scale, 255.0)
    return Dataset(X=X, y=y, image_shape=tuple(stack.shape[1:]), name=name)
