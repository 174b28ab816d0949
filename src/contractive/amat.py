"""The ``.amat`` text files of Larochelle et al. (2007): the MNIST variations and shape sets.

One example per line, values separated by whitespace: ``n_features`` pixel values in [0, 1]
(784 for a 28x28 image), then the label. The originals write every value as a float, the label
too (``7.0000000e+00``); a label only has to be a whole number. :func:`read_amat` parses the
text a block of lines at a time with NumPy's C parser (``np.loadtxt``, which on NumPy 2 is
about twice as fast as ``np.fromstring`` here), checks each block with array operations, and
only when a block fails reads that block again line by line in Python, for a message that
names the file, the line and the column of the first problem.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from contractive.exceptions import DataError
from contractive.validation import check_int, is_int, parameter_error

__all__ = ["read_amat"]

# Text parsed per np.loadtxt call. 16 MiB of '%.7e' values is ~1.1M values (~1400 rows of
# 785): 9 MiB as float64, so the block's own arrays stay small beside the result.
_BLOCK_BYTES = 16 << 20

# Labels are stored as int64 from floats; beyond 2**53 a float no longer holds every integer.
_MAX_LABEL = 2.0**53


def read_amat(
    path: str | os.PathLike[str],
    *,
    n_features: int = 784,
    classes: Sequence[int] | None = None,
    name: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read an ``.amat`` file of Larochelle et al. (2007): pixels in [0, 1], then a label.

    Blank lines (a blank last line too) are skipped; ``\\r\\n`` line ends are accepted.

    Parameters
    ----------
    path : str or path-like
        The text file.
    n_features : int, default=784
        Values before the label on each line (784 = 28x28 pixels).
    classes : sequence of int, optional
        The labels allowed, e.g. ``range(10)``; None allows any whole number.
    name : str, optional
        What the messages call the file; the path by default.

    Returns
    -------
    X : np.ndarray
        ``(n, n_features)`` float32, the rows in the file's order.
    y : np.ndarray
        ``(n,)`` int64 labels.

    Raises
    ------
    DataError
        If the file cannot be read or holds no rows, or at the first line that does not hold
        ``n_features + 1`` values, holds something that is not a number, a pixel outside
        [0, 1], or a label that is not a whole number (or not one of ``classes``). The message
        is one line naming the file, the line (1-based) and, for a value, its column.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "tiny.amat"
    >>> _ = path.write_text(
    ...     "0.0000000e+00 2.5000000e-01 1.0000000e+00 7.0000000e+00\\n"
    ...     "5.0000000e-01 0.0000000e+00 0.0000000e+00 3.0000000e+00\\n"
    ... )
    >>> X, y = read_amat(path, n_features=3)
    >>> X
    array([[0.  , 0.25, 1.  ],
           [0.5 , 0.  , 0.  ]], dtype=float32)
    >>> y
    array([7, 3])

    Each problem is reported where it is:

    >>> _ = path.write_text("0 0.5 1 7\\n0 1.5 0 3\\n")
    >>> read_amat(path, n_features=3)
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: .../tiny.amat, line 2, column 2: the pixel value 1.5 is \
outside [0, 1]
    >>> read_amat(path, n_features=2)
    Traceback (most recent call last):
        ...
    contractive.exceptions.DataError: .../tiny.amat, line 1: expected 3 values (2 pixels \
and the label), found 4
    """
    n_features = check_int("n_features", n_features, low=1, owner="read_amat")
    allowed = _check_classes(classes)
    path = Path(path)
    shown = str(path) if name is None else name
    X_parts: list[np.ndarray] = []  # (rows of a block, n_features) float32
    y_parts: list[np.ndarray] = []  # (rows of a block,) int64
    try:
        f = path.open("rb")
    except OSError as exc:
        raise DataError(f"{shown} could not be read: {exc}") from exc
    with f:
        try:
            for block, first_line in _blocks(f):
                X, y = _parse_block(block, first_line, n_features, allowed, shown)
                if len(y):
                    X_parts.append(X)
                    y_parts.append(y)
        except OSError as exc:
            raise DataError(f"{shown} could not be read: {exc}") from exc
    if not y_parts:
        raise DataError(f"{shown} is empty: it holds no rows")
    if len(X_parts) == 1:
        return X_parts[0], y_parts[0]
    # The one moment two copies of the pixels exist: the blocks and their concatenation.
    X_all = np.concatenate(X_parts)
    X_parts.clear()
    return X_all, np.concatenate(y_parts)


def _check_classes(classes: Sequence[int] | None) -> tuple[int, ...] | None:
    if classes is None:
        return None
    if isinstance(classes, str | bytes) or not all(is_int(c) for c in classes):
        raise parameter_error("classes", "a sequence of ints or None", classes, owner="read_amat")
    allowed = tuple(sorted({int(c) for c in classes}))
    if not allowed:
        raise parameter_error("classes", "a non-empty sequence of ints", classes, owner="read_amat")
    return allowed


def _blocks(f: BinaryIO) -> Iterator[tuple[bytes, int]]:
    """Blocks of whole lines of ``f`` (about ``_BLOCK_BYTES`` each), each with its first line."""
    line = 1
    rest = b""
    while True:
        data = f.read(_BLOCK_BYTES)
        if not data:
            if rest:
                yield rest, line  # a last line without a newline
            return
        buf = rest + data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:  # a line longer than a block: read on
            rest = buf
            continue
        block, rest = buf[:cut], buf[cut:]
        yield block, line
        line += block.count(b"\n")


def _parse_block(
    block: bytes,
    first_line: int,
    n_features: int,
    allowed: tuple[int, ...] | None,
    shown: str,
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of a block of lines, or the DataError of its first bad line."""
    try:
        with warnings.catch_warnings():
            # loadtxt warns on a block of blank lines: that is no rows, not an error.
            warnings.simplefilter("ignore", UserWarning)
            # comments=None: a '#' is not a number, not the start of a comment.
            data = np.loadtxt(
                io.BytesIO(block), dtype=np.float64, comments=None, ndmin=2, encoding="latin-1"
            )  # (rows, n_features + 1)
    except ValueError as exc:
        raise _first_error(block, first_line, n_features, allowed, shown, str(exc)) from None
    if data.shape[0] == 0:
        return np.empty((0, n_features), np.float32), np.empty(0, np.int64)
    if data.shape[1] != n_features + 1:
        raise _first_error(block, first_line, n_features, allowed, shown)
    pixels = data[:, :n_features]
    labels = data[:, n_features]
    # Written so that NaN fails both tests.
    pixels_ok = bool(((pixels >= 0) & (pixels <= 1)).all())
    labels_ok = bool(np.all((labels == np.round(labels)) & (np.abs(labels) < _MAX_LABEL)))
    if labels_ok and allowed is not None:
        labels_ok = bool(np.isin(labels, allowed).all())
    if not (pixels_ok and labels_ok):
        raise _first_error(block, first_line, n_features, allowed, shown)
    return pixels.astype(np.float32), labels.astype(np.int64)


def _number(field: str) -> float | None:
    # float() also takes '1_000', which np.loadtxt refuses; refuse it here too.
    if "_" in field:
        return None
    try:
        return float(field)
    except ValueError:
        return None


def _first_error(
    block: bytes,
    first_line: int,
    n_features: int,
    allowed: tuple[int, ...] | None,
    shown: str,
    parser_message: str | None = None,
) -> DataError:
    """The first bad line of a block, found in Python (error path only, so speed is fine)."""
    n_values = n_features + 1
    for offset, line in enumerate(block.decode("utf-8", errors="replace").split("\n")):
        fields = line.split()
        if not fields:
            continue
        where = f"{shown}, line {first_line + offset}"
        if len(fields) != n_values:
            return DataError(
                f"{where}: expected {n_values} values ({n_features} pixels and the label), "
                f"found {len(fields)}"
            )
        for column, field in enumerate(fields, start=1):
            value = _number(field)
            if value is None:
                return DataError(f"{where}, column {column}: {field!r} is not a number")
            if column <= n_features and not 0 <= value <= 1:
                return DataError(
                    f"{where}, column {column}: the pixel value {field} is outside [0, 1]"
                )
        label = float(fields[-1])
        if not (math.isfinite(label) and label.is_integer() and abs(label) < _MAX_LABEL):
            return DataError(
                f"{where}, column {n_values}: the label {fields[-1]} is not a whole number"
            )
        if allowed is not None and int(label) not in allowed:
            return DataError(
                f"{where}, column {n_values}: the label {fields[-1]} is not one of the classes "
                f"{', '.join(map(str, allowed))}"
            )
    # Not reached unless the C parser refused something that Python's float() takes.
    detail = f": {parser_message}" if parser_message else ""
    return DataError(f"{shown} could not be read as an .amat file{detail}")
