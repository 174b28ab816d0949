"""Checking parameter values, with one wording: scikit-learn's.

contractive's functions, classes and commands check their int, real and choice parameters
with what is here, so that a bad value fails the same way wherever it is passed::

    The 'contraction' parameter of ContractiveAutoencoder must be a float in the range
    [0, inf). Got -1 instead.

(without ``of ...`` when no owner is named). The error is a
:class:`~contractive.exceptions.ConfigError`, a ``ValueError``.

The rules, the same everywhere:

* an int is a Python or NumPy integer, never a bool (``True`` is not 1 here);
* a real is an int or a Python or NumPy float, never a bool;
* NaN and the infinities are in no :class:`Interval`: an absent bound is infinite and open;
* a choice is a ``str`` among given options.

:class:`Interval` and :class:`Options` describe a valid value (``value in Interval(...)`` tests
it, ``str()`` words it); :func:`check_int`, :func:`check_real` and :func:`check_choice` test a
value, raise the error and return the value as a plain Python ``int``, ``float`` or ``str``.
:func:`parameter_error` words the error of a constraint that these do not express.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeGuard, TypeVar

import numpy as np

from .exceptions import ConfigError

__all__ = [
    "Interval",
    "Options",
    "check",
    "check_choice",
    "check_int",
    "check_output_dir",
    "check_real",
    "is_bool",
    "is_int",
    "is_real",
    "parameter_error",
]

#: Which ends of an :class:`Interval` belong to it, as scikit-learn's ``Interval`` says it.
Closed = Literal["left", "right", "both", "neither"]
_CLOSED = ("left", "right", "both", "neither")

_T = TypeVar("_T")


def is_bool(value: object) -> bool:
    """Whether ``value`` is a Python or NumPy bool.

    Examples
    --------
    >>> import numpy as np
    >>> is_bool(True), is_bool(np.bool_(False)), is_bool(1)
    (True, True, False)
    """
    return isinstance(value, bool | np.bool_)


def is_int(value: object) -> TypeGuard[int]:
    """Whether ``value`` is an integer (Python or NumPy) and not a bool.

    Examples
    --------
    >>> import numpy as np
    >>> is_int(3), is_int(np.int64(3)), is_int(True), is_int(3.0)
    (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not is_bool(value)


def is_real(value: object) -> TypeGuard[float]:
    """Whether ``value`` is a real number (an int or a Python or NumPy float) and not a bool.

    NaN and the infinities are reals; an :class:`Interval` refuses them.

    Examples
    --------
    >>> import numpy as np
    >>> is_real(0.5), is_real(2), is_real(np.float32(0.5)), is_real(float("nan"))
    (True, True, True, True)
    >>> is_real(False), is_real("0.5")
    (False, False)
    """
    return isinstance(value, numbers.Real) and not is_bool(value)


def _finite(value: float) -> bool:
    # A Python int too large for a float is still finite (math.isfinite would overflow).
    return is_int(value) or math.isfinite(value)


def _bound(value: float) -> str:
    """A bound as the messages show it: ``0`` and ``1`` rather than ``0.0`` and ``1.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if is_int(value) else repr(float(value))


@dataclass(frozen=True)
class Interval:
    """The ints, or the finite floats, between two bounds.

    Parameters
    ----------
    kind : {int, float}
        ``int``: integers (NumPy ones too), never bools. ``float``: real numbers, ints
        included, never bools, NaN or infinities.
    low, high : float, optional
        The bounds; None is no bound (an open infinite end).
    closed : {"left", "right", "both", "neither"}, default="both"
        Which of the given bounds belong to the interval.

    Examples
    --------
    >>> unit = Interval(float, 0, 1, closed="left")
    >>> str(unit)
    'a float in the range [0, 1)'
    >>> 0 in unit, 0.5 in unit, 1.0 in unit, float("nan") in unit, False in unit
    (True, True, False, False, False)
    >>> str(Interval(int, 1)), 1 in Interval(int, 1), 1.0 in Interval(int, 1)
    ('an int in the range [1, inf)', True, False)
    >>> Interval(float, 0, closed="neither").range
    '(0, inf)'
    >>> float("inf") in Interval(float, 0)
    False
    """

    kind: type[int] | type[float]
    low: float | None = None
    high: float | None = None
    closed: Closed = "both"

    def __post_init__(self) -> None:
        if self.kind not in (int, float):
            raise TypeError(f"Interval kind must be int or float, not {self.kind!r}.")
        if self.closed not in _CLOSED:
            raise ValueError(f"Interval closed must be one of {_CLOSED}, not {self.closed!r}.")

    def __contains__(self, value: object) -> bool:
        if self.kind is int:
            if not is_int(value):
                return False
        elif not (is_real(value) and _finite(value)):
            return False
        low, high = self.low, self.high
        above = low is None or value > low or (value == low and self._closed_low)
        below = high is None or value < high or (value == high and self._closed_high)
        return above and below

    @property
    def _closed_low(self) -> bool:
        return self.closed in ("left", "both")

    @property
    def _closed_high(self) -> bool:
        return self.closed in ("right", "both")

    @property
    def range(self) -> str:
        """The bounds as the messages write them, e.g. ``"[0, 1)"``."""
        if self.low is None:
            left = "(-inf"
        else:
            left = ("[" if self._closed_low else "(") + _bound(self.low)
        if self.high is None:
            right = "inf)"
        else:
            right = _bound(self.high) + ("]" if self._closed_high else ")")
        return f"{left}, {right}"

    def __str__(self) -> str:
        kind = "an int" if self.kind is int else "a float"
        if self.low is None and self.high is None:
            return kind if self.kind is int else "a finite float"
        return f"{kind} in the range {self.range}"


@dataclass(frozen=True)
class Options:
    """The strings among a fixed set of options.

    Parameters
    ----------
    options : tuple of str
        The valid values, in the order the message lists them.

    Examples
    --------
    >>> optimizers = Options(("adam", "sgd"))
    >>> str(optimizers)
    "a str among {'adam', 'sgd'}"
    >>> "sgd" in optimizers, "rmsprop" in optimizers, None in optimizers
    (True, False, False)
    """

    options: tuple[str, ...]

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and value in self.options

    def __str__(self) -> str:
        return "a str among {" + ", ".join(repr(o) for o in self.options) + "}"


def parameter_error(
    name: str, constraint: object, value: object, *, owner: str | None = None
) -> ConfigError:
    """The error for a parameter whose value breaks ``constraint`` (returned, not raised).

    Parameters
    ----------
    name : str
        The parameter's name.
    constraint : Interval, Options or str
        What a valid value is; its ``str()`` follows "must be".
    value : object
        The value given, shown with ``repr``.
    owner : str, optional
        The class or function the parameter belongs to, e.g. ``"ContractiveAutoencoder"``.

    Examples
    --------
    >>> print(parameter_error("k", "an int of at most 3", 5))
    The 'k' parameter must be an int of at most 3. Got 5 instead.
    >>> print(parameter_error("lr", Interval(float, 0, closed="neither"), -1.0, owner="fit"))
    The 'lr' parameter of fit must be a float in the range (0, inf). Got -1.0 instead.
    """
    of = f" of {owner}" if owner else ""
    return ConfigError(f"The {name!r} parameter{of} must be {constraint}. Got {value!r} instead.")


def check(name: str, value: _T, constraint: Interval | Options, *, owner: str | None = None) -> _T:
    """``value`` unchanged if it is in ``constraint``, else a :class:`ConfigError` naming it.

    Examples
    --------
    >>> check("momentum", 0.9, Interval(float, 0, 1))
    0.9
    >>> check("momentum", 1.5, Interval(float, 0, 1))
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'momentum' parameter must be a float in the range [0, 1]. Got 1.5 instead.
    """  # noqa: E501
    if value not in constraint:
        raise parameter_error(name, constraint, value, owner=owner)
    return value


def check_int(
    name: str,
    value: object,
    *,
    low: int | None = None,
    high: int | None = None,
    owner: str | None = None,
) -> int:
    """``value`` as a Python ``int``, if it is an int (not a bool) in ``[low, high]``.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        What was passed; NumPy integers are accepted.
    low, high : int, optional
        Inclusive bounds; None is no bound.
    owner : str, optional
        The class or function the parameter belongs to, for the message.

    Returns
    -------
    int

    Raises
    ------
    ConfigError
        ``value`` is not an int, is a bool, or is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> check_int("epochs", np.int64(5), low=1)
    5
    >>> check_int("epochs", 0, low=1)
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'epochs' parameter must be an int in the range [1, inf). Got 0 instead.
    >>> check_int("verbose", True, low=0, high=2, owner="fit")
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'verbose' parameter of fit must be an int in the range [0, 2]. Got True instead.
    """  # noqa: E501
    interval = Interval(int, low, high)
    if not is_int(value) or value not in interval:
        raise parameter_error(name, interval, value, owner=owner)
    return int(value)


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    closed: Closed = "both",
    owner: str | None = None,
) -> float:
    """``value`` as a Python ``float``, if it is a finite real (not a bool) between the bounds.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        What was passed; ints and NumPy floats are accepted.
    low, high : float, optional
        The bounds; None is no bound. NaN and the infinities are always refused.
    closed : {"left", "right", "both", "neither"}, default="both"
        Which of the given bounds are valid values.
    owner : str, optional
        The class or function the parameter belongs to, for the message.

    Returns
    -------
    float

    Raises
    ------
    ConfigError
        ``value`` is not a real, is a bool, NaN, infinite or out of range.

    Examples
    --------
    >>> check_real("dropout", 0, low=0, high=1, closed="left")
    0.0
    >>> check_real("contraction", -1, low=0, owner="ContractiveAutoencoder")
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'contraction' parameter of ContractiveAutoencoder must be a float in the range [0, inf). Got -1 instead.
    >>> check_real("lr", float("nan"), low=0, closed="neither")
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'lr' parameter must be a float in the range (0, inf). Got nan instead.
    """  # noqa: E501
    interval = Interval(float, low, high, closed)
    if not is_real(value) or value not in interval:
        raise parameter_error(name, interval, value, owner=owner)
    return float(value)


def check_choice(
    name: str, value: object, choices: Iterable[str], *, owner: str | None = None
) -> str:
    """``value`` if it is one of ``choices`` (a ``str``), else a :class:`ConfigError`.

    Parameters
    ----------
    name : str
        The parameter's name, for the message.
    value : object
        What was passed.
    choices : iterable of str
        The valid values, in the order the message lists them (a mapping gives its keys).
    owner : str, optional
        The class or function the parameter belongs to, for the message.

    Returns
    -------
    str

    Examples
    --------
    >>> check_choice("optimizer", "sgd", ("sgd", "adam"))
    'sgd'
    >>> check_choice("optimizer", "lbfgs", ("sgd", "adam"))
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'optimizer' parameter must be a str among {'sgd', 'adam'}. Got 'lbfgs' instead.
    """  # noqa: E501
    options = Options(tuple(choices))
    if not isinstance(value, str) or value not in options:
        raise parameter_error(name, options, value, owner=owner)
    return value


def check_output_dir(path: str | os.PathLike[str], *, flag: str = "--out") -> Path:
    """``path`` as a :class:`~pathlib.Path`, if it is a folder or does not exist yet.

    For a folder that a command writes into (creating it if need be); ``flag`` names the
    option in the message.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> check_output_dir(folder / "new") == folder / "new"
    True
    >>> _ = (folder / "file").write_text("")
    >>> check_output_dir(folder / "file")
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: --out .../file exists and is not a folder.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out} exists and is not a folder.")
    return out
