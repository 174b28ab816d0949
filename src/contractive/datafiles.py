"""User data files (``.npy``, also memory-mapped, ``.npz`` and ``.csv``) read as float32 samples.

Each file is checked to be what its suffix says before NumPy reads it (nothing is unpickled),
its values numeric and finite, its arrays of a usable shape, and labels whole numbers; every
refusal is a :class:`~contractive.exceptions.DataError` naming the file (and the line and
column of a CSV). :func:`contractive.data.load_dataset` reads files through
:func:`read_data_file`.
"""

from __future__ import annotations

import csv
import math
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from contractive.exceptions import ConfigError, DataError

__all__ = ["minmax_scale_", "read_data_file"]

_NPY_MAGIC = b"\x93NUMPY"
# Bounds the temporaries of chunked scans (non-finite check, min-max scaling) to ~64 MiB of
# float32, whatever the dataset size, which matters for memory-mapped files.
_CHUNK_ELEMENTS = 1 << 24


def read_data_file(
    path: Path, name: str, label_column: str | int | None = None, *, mmap: bool = False
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...] | None]:
    """Read a ``.npy``, ``.npz`` or ``.csv`` file as samples, labels and image shape.

    Parameters
    ----------
    path : pathlib.Path
        An existing, non-empty file; its suffix (any case) says the format.
    name : str
        How messages name the file.
    label_column : str or int, optional
        As for :func:`contractive.data.load_dataset`: the label column of a ``.csv`` file (a
        header name or an index), the label array of a ``.npz`` file; refused for ``.npy``.
    mmap : bool
        Memory-map a ``.npy`` file: the samples are then a read-only view of it in its own
        dtype. Ignored for other formats.

    Returns
    -------
    X : np.ndarray
        ``(n_samples, n_features)``, float32 unless memory-mapped, checked finite.
    y : np.ndarray or None
        int64 labels.
    image_shape : tuple of int or None
        The shape of one sample of a 3-D or 4-D array.

    Raises
    ------
    DataError
        When the file is unreadable, not its format, or holds unusable values or shapes.
    ConfigError
        When ``label_column`` does not apply to the file.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "images.npy"
    >>> np.save(path, np.arange(12, dtype=np.uint8).reshape(3, 2, 2))
    >>> X, y, image_shape = read_data_file(path, "images.npy")
    >>> X.shape, X.dtype, y, image_shape
    ((3, 4), dtype('float32'), None, (2, 2))
    >>> _ = path.with_suffix(".csv").write_text("a,b,label\\n0.5,1,3\\n", encoding="utf-8")
    >>> read_data_file(path.with_suffix(".csv"), "t.csv", "label")
    (array([[0.5, 1. ]], dtype=float32), array([3]), None)
    """
    suffix = path.suffix.lower()
    if suffix == ".npy":
        if label_column is not None:
            raise ConfigError(
                f"label_column does not apply to {name}: a .npy file holds one array and no "
                "labels (use a .npz file with X and y arrays)"
            )
        if mmap:
            return _load_npy_mmap(path, name)
        arr = _np_load(path, name)
        X, image_shape = _as_samples(arr, name)
        y = None
    elif suffix == ".npz":
        X, y, image_shape = _load_npz(path, name, label_column)
    else:
        X, y = _load_csv(path, name, label_column)
        image_shape = None
    _check_finite(X, name)
    return X, y, image_shape


def minmax_scale_(X: np.ndarray) -> None:
    """Scale each column of the float32 array ``X`` to [0, 1] in place.

    Each column is mapped by its own min and max; a constant column becomes 0. The arithmetic
    is float64, in chunks of bounded size (a large array gets no array-sized temporary).

    Parameters
    ----------
    X : np.ndarray
        ``(n_samples, n_features)`` float32, writable.

    Examples
    --------
    >>> X = np.array([[0.0, 5.0, 2.0], [10.0, 5.0, 4.0], [5.0, 5.0, 3.0]], dtype=np.float32)
    >>> minmax_scale_(X)
    >>> X
    array([[0. , 0. , 0. ],
           [1. , 0. , 1. ],
           [0.5, 0. , 0.5]], dtype=float32)
    """
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


def _load_npy_mmap(path: Path, name: str) -> tuple[np.ndarray, None, tuple[int, ...] | None]:
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
    return X, None, image_shape


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
