"""The parameters of :class:`~contractive.estimator.ContractiveAutoencoder`: their constraints.

scikit-learn's own machinery (``_parameter_constraints``) lives in a private module that its
maintainers do not support for third-party estimators, so the constraints are checked with
:mod:`contractive.validation`, which words them as scikit-learn does. A parameter that is a
Config option (under the same name or another) is checked against that option's constraint,
so that the two never describe one constraint twice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .config import Config
from .exceptions import DataError
from .validation import Interval, Options, is_bool, is_int, parameter_error

__all__ = ["COMMON_CONSTRAINTS", "check_estimator_params", "check_unit_interval", "seed_from"]

_LOSS_OPTIONS = ("auto", "bce", "mse")
_DEVICES = ("auto", "cpu", "cuda")

_OWNER = "ContractiveAutoencoder"
_POSITIVE_INT = Interval(int, 1)
_NON_NEGATIVE_INT = Interval(int, 0)
_SEED = Interval(int, 0, 2**32 - 1)
_BOOL = "an instance of 'bool' or an instance of 'numpy.bool'"

#: A test of a value and the constraint it checks, as scikit-learn words it.
_Rule = tuple[Callable[[Any], bool], str]


def _rule(constraint: Interval | Options) -> _Rule:
    return constraint.__contains__, str(constraint)


def _option(name: str) -> _Rule:
    """The rule of the Config option ``name``."""
    constraint = Config.constraint(name)
    if constraint is None:  # pragma: no cover - a programming error, seen at import
        raise LookupError(f"Config option {name!r} is not checked by a range or choices.")
    return _rule(constraint)


def _layer_sizes_ok(v: Any) -> bool:
    if v is None or v in _POSITIVE_INT:
        return True
    if isinstance(v, str) or not isinstance(v, Sequence | np.ndarray):
        return False
    return all(s in _POSITIVE_INT for s in v)


def _random_state_ok(v: Any) -> bool:
    return v is None or isinstance(v, np.random.RandomState) or v in _SEED


def _device_ok(v: Any) -> bool:
    return v in Options(_DEVICES) or (
        isinstance(v, str) and re.fullmatch(r"cuda:\d+", v) is not None
    )


#: The parameters every estimator of the package has, by name -> (test, constraint as
#: scikit-learn words it).
COMMON_CONSTRAINTS: dict[str, _Rule] = {
    "random_state": (
        _random_state_ok,
        f"{_SEED}, an instance of 'numpy.random.mtrand.RandomState' or None",
    ),
    "device": (_device_ok, f"{Options(_DEVICES)} or a str of the form 'cuda:N'"),
    "verbose": (lambda v: is_bool(v) or v in _NON_NEGATIVE_INT, f"{_NON_NEGATIVE_INT}, {_BOOL}"),
}

#: Parameter name -> (test, constraint as scikit-learn words it).
_CONSTRAINTS: dict[str, _Rule] = {
    "n_components": _rule(_POSITIVE_INT),
    "contraction": _option("contraction"),
    "hidden_layer_sizes": (
        _layer_sizes_ok,
        f"None, {_POSITIVE_INT} or a sequence of ints in the range {_POSITIVE_INT.range}",
    ),
    "activation": _option("activation"),
    "tied": (is_bool, _BOOL),
    "loss": _rule(Options(_LOSS_OPTIONS)),
    "penalty": _option("penalty"),
    "epochs": _option("epochs"),
    "batch_size": _option("batch_size"),
    "learning_rate": _option("lr"),
    "optimizer": _option("optimizer"),
    "validation_fraction": _option("validation_fraction"),
    "early_stopping": _option("patience"),
    **COMMON_CONSTRAINTS,
}


def check_estimator_params(params: Mapping[str, Any]) -> None:
    """Check the constructor parameters of ``ContractiveAutoencoder``, as scikit-learn words it.

    Parameters
    ----------
    params : mapping
        Every parameter of the estimator by name (``get_params(deep=False)``).

    Raises
    ------
    ConfigError
        At the first parameter whose value is outside its constraint.

    Examples
    --------
    >>> from contractive.estimator import ContractiveAutoencoder
    >>> check_estimator_params(ContractiveAutoencoder().get_params())
    >>> check_estimator_params({**ContractiveAutoencoder().get_params(), "n_components": 0})
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'n_components' parameter of ContractiveAutoencoder
    must be an int in the range [1, inf). Got 0 instead.
    """
    for name, (ok, constraint) in _CONSTRAINTS.items():
        value = params[name]
        if not ok(value):
            raise parameter_error(name, constraint, value, owner=_OWNER)


def check_unit_interval(X: np.ndarray, owner: str) -> None:
    """Refuse ``X`` outside [0, 1] for an estimator whose ``loss='bce'``.

    Raises
    ------
    DataError
        Worded as scikit-learn's ``positive_only`` checks expect ("Negative values in data").

    Examples
    --------
    >>> check_unit_interval(np.array([[0.0, 1.0]]), "ContractiveAutoencoder")
    >>> try:
    ...     check_unit_interval(np.array([[-1.0, 1.0]]), "ContractiveAutoencoder")
    ... except ValueError as e:
    ...     print(str(e)[:64])
    Negative values in data passed to ContractiveAutoencoder with lo
    """
    lo, hi = float(X.min()), float(X.max())
    if lo < 0.0 or hi > 1.0:
        # "Negative values in data" is scikit-learn's wording for the positive_only tag.
        what = "Negative values in data" if lo < 0.0 else "Values above 1 in data"
        raise DataError(
            f"{what} passed to {owner} with loss='bce', which needs X in "
            f"[0, 1] (got min {lo:g}, max {hi:g}). Scale X into [0, 1] (e.g. with "
            "sklearn.preprocessing.MinMaxScaler) or use loss='mse' (or loss='auto', which "
            "picks 'mse' for such data)."
        )


def seed_from(random_state: Any) -> int:
    """The seed an estimator's ``random_state`` stands for.

    An int is the seed; None or a ``RandomState`` draws it, as scikit-learn estimators do.

    Examples
    --------
    >>> seed_from(7), seed_from(np.random.RandomState(0)) == seed_from(np.random.RandomState(0))
    (7, True)
    """
    if is_int(random_state):
        return int(random_state)
    from sklearn.utils import check_random_state

    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
