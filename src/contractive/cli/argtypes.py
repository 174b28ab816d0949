"""argparse ``type=`` converters shared by the command's sub-commands.

Each raises ``argparse.ArgumentTypeError``, which argparse turns into a one-line usage error
(exit status 2) naming the option. What is valid is an :class:`~contractive.validation.Interval`,
the same rule as the Python API's checks; only the wording is the command line's.

Examples
--------
What each converter refuses, in its words:

>>> for convert, text in [
...     (positive_int, "0"),
...     (non_negative_int, "1.5"),
...     (non_negative_float, "inf"),
...     (non_negative_float, "lots"),
...     (positive_float, "0"),
...     (probability, "1"),
... ]:
...     try:
...         convert(text)
...     except argparse.ArgumentTypeError as exc:
...         print(f"{convert.__name__}: {exc}")
positive_int: expected a positive integer, got '0'
non_negative_int: expected an integer >= 0, got '1.5'
non_negative_float: expected a finite number >= 0, got 'inf'
non_negative_float: expected a number >= 0, got 'lots'
positive_float: expected a finite number > 0, got '0'
probability: expected a number in [0, 1), got '1'
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from ..validation import Interval

__all__ = [
    "non_negative_float",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "probability",
]

_N = TypeVar("_N", int, float)


def _parse(
    text: str,
    convert: Callable[[str], _N],
    valid: Interval,
    expected: str,
    unparsable: str | None = None,
) -> _N:
    """``convert(text)`` if it is in ``valid``, else an ArgumentTypeError "expected ..., got ...".

    ``unparsable`` words the error when ``convert`` fails (default: ``expected``).
    """
    try:
        value = convert(text)
    except ValueError:
        what = unparsable or expected
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if value not in valid:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1, such as an epoch count or a batch size.

    Examples
    --------
    >>> import argparse
    >>> parser = argparse.ArgumentParser()
    >>> _ = parser.add_argument("--epochs", type=positive_int)
    >>> parser.parse_args(["--epochs", "5"]).epochs
    5
    """
    return _parse(text, int, Interval(int, 1), "a positive integer")


def non_negative_int(text: str) -> int:
    """An integer >= 0, such as a seed.

    Examples
    --------
    >>> non_negative_int("0")
    0
    """
    return _parse(text, int, Interval(int, 0), "an integer >= 0")


def non_negative_float(text: str) -> float:
    """A finite number >= 0, such as a penalty weight.

    Examples
    --------
    >>> non_negative_float("0")
    0.0
    """
    return _parse(text, float, Interval(float, 0), "a finite number >= 0", "a number >= 0")


def positive_float(text: str) -> float:
    """A finite number > 0, such as a noise level.

    Examples
    --------
    >>> positive_float("1e-3")
    0.001
    """
    return _parse(
        text, float, Interval(float, 0, closed="neither"), "a finite number > 0", "a number > 0"
    )


def probability(text: str) -> float:
    """A probability in [0, 1), such as a dropout rate.

    Examples
    --------
    >>> probability("0.25")
    0.25
    """
    return _parse(text, float, Interval(float, 0, 1, closed="left"), "a number in [0, 1)")
