"""contractive.validation: what each validator accepts, what it refuses, and the exact message."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest

from contractive.exceptions import ConfigError
from contractive.validation import (
    Interval,
    Options,
    check,
    check_choice,
    check_int,
    check_output_dir,
    check_real,
    is_bool,
    is_int,
    is_real,
    parameter_error,
)


def _message(name: str, constraint: str, shown: str, owner: str | None = None) -> str:
    """The whole message, anchored and escaped for ``pytest.raises(match=...)``."""
    of = f" of {owner}" if owner else ""
    return (
        f"^{re.escape(f'The {name!r} parameter{of} must be {constraint}. Got {shown} instead.')}$"
    )


# ---------------------------------------------------------------------------------------------
# Predicates.


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, True),
        (-3, True),
        (2**80, True),
        (np.int64(3), True),
        (np.int8(-1), True),
        (np.uint32(7), True),
        (True, False),
        (np.bool_(True), False),
        (3.0, False),
        (np.float64(3.0), False),
        ("3", False),
        (None, False),
    ],
)
def test_is_int(value: object, expected: bool) -> None:
    assert is_int(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, True),
        (0.5, True),
        (np.int64(3), True),
        (np.float32(0.5), True),
        (np.float64(0.5), True),
        (math.nan, True),
        (math.inf, True),
        (False, False),
        (np.bool_(False), False),
        ("0.5", False),
        (None, False),
        (1j, False),
    ],
)
def test_is_real(value: object, expected: bool) -> None:
    assert is_real(value) is expected


def test_is_bool() -> None:
    assert [is_bool(v) for v in (True, False, np.bool_(True))] == [True, True, True]
    assert [is_bool(v) for v in (1, 0, 0.0, None, "True")] == [False] * 5


# ---------------------------------------------------------------------------------------------
# Interval and Options.


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (Interval(int, 1), "an int in the range [1, inf)"),
        (Interval(int, 0, 2**32 - 1), "an int in the range [0, 4294967295]"),
        (Interval(int, high=5), "an int in the range (-inf, 5]"),
        (Interval(int), "an int"),
        (Interval(float, 0), "a float in the range [0, inf)"),
        (Interval(float, 0.0, closed="neither"), "a float in the range (0, inf)"),
        (Interval(float, 0, 1, closed="left"), "a float in the range [0, 1)"),
        (Interval(float, 0, 1, closed="right"), "a float in the range (0, 1]"),
        (Interval(float, 0.0, 1.0), "a float in the range [0, 1]"),
        (Interval(float, 1e-3, 0.5, closed="neither"), "a float in the range (0.001, 0.5)"),
        (Interval(float, high=-1.5), "a float in the range (-inf, -1.5]"),
        (Interval(float), "a finite float"),
    ],
)
def test_interval_wording(interval: Interval, text: str) -> None:
    assert str(interval) == text


@pytest.mark.parametrize(
    ("closed", "inside"),
    [
        ("both", [0.0, 0.5, 1.0]),
        ("left", [0.0, 0.5]),
        ("right", [0.5, 1.0]),
        ("neither", [0.5]),
    ],
)
def test_interval_bounds(closed: str, inside: list[float]) -> None:
    interval = Interval(float, 0, 1, closed=closed)  # type: ignore[arg-type]
    assert [v for v in (-0.1, 0.0, 0.5, 1.0, 1.1) if v in interval] == inside


def test_interval_refuses_nan_infinities_bools_and_other_kinds() -> None:
    reals = Interval(float)
    for value in (0, -1e300, np.float32(2.5), np.int64(-4)):
        assert value in reals
    for value in (math.nan, math.inf, -math.inf, np.float32("nan"), True, "1", None, 1j):
        assert value not in reals
    ints = Interval(int, 0)
    for value in (0, np.int64(5), 2**80):
        assert value in ints
    for value in (1.0, np.float64(1.0), True, False, "1", None):
        assert value not in ints
    assert 2**2000 in Interval(float, 0)  # a huge int is finite, not an overflow


def test_interval_rejects_a_bad_definition() -> None:
    with pytest.raises(TypeError, match="int or float"):
        Interval(complex)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="closed must be one of"):
        Interval(float, 0, 1, closed="open")  # type: ignore[arg-type]


def test_options() -> None:
    options = Options(("adam", "sgd"))
    assert str(options) == "a str among {'adam', 'sgd'}"
    for value in ("adam", np.str_("sgd")):
        assert value in options
    for value in ("Adam", "", None, 1, ["adam"], ("adam",)):
        assert value not in options


# ---------------------------------------------------------------------------------------------
# check_int


@pytest.mark.parametrize(
    ("value", "low", "high", "expected"),
    [
        (1, 1, None, 1),
        (np.int64(7), 1, None, 7),
        (np.uint8(0), 0, None, 0),
        (2**40, 0, None, 2**40),
        (5, None, 5, 5),
        (-9, None, None, -9),
        (4294967295, 0, 2**32 - 1, 4294967295),
    ],
)
def test_check_int_accepts(value: object, low: int | None, high: int | None, expected: int) -> None:
    result = check_int("n", value, low=low, high=high)
    assert result == expected
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "low", "high", "constraint", "shown"),
    [
        (0, 1, None, "an int in the range [1, inf)", "0"),
        (-1, 0, None, "an int in the range [0, inf)", "-1"),
        (6, None, 5, "an int in the range (-inf, 5]", "6"),
        (2**32, 0, 2**32 - 1, "an int in the range [0, 4294967295]", "4294967296"),
        (True, 1, None, "an int in the range [1, inf)", "True"),
        (False, 0, None, "an int in the range [0, inf)", "False"),
        (np.bool_(True), 0, None, "an int in the range [0, inf)", repr(np.bool_(True))),
        (2.0, 1, None, "an int in the range [1, inf)", "2.0"),
        (np.float64(2.0), 1, None, "an int in the range [1, inf)", repr(np.float64(2.0))),
        ("3", 1, None, "an int in the range [1, inf)", "'3'"),
        (None, 1, None, "an int in the range [1, inf)", "None"),
        (math.nan, 1, None, "an int in the range [1, inf)", "nan"),
        (2.5, None, None, "an int", "2.5"),
    ],
)
def test_check_int_refuses(
    value: object, low: int | None, high: int | None, constraint: str, shown: str
) -> None:
    with pytest.raises(ConfigError, match=_message("epochs", constraint, shown)):
        check_int("epochs", value, low=low, high=high)


def test_check_int_names_the_owner() -> None:
    match = _message("epochs", "an int in the range [1, inf)", "0", owner="ContractiveAutoencoder")
    with pytest.raises(ConfigError, match=match):
        check_int("epochs", 0, low=1, owner="ContractiveAutoencoder")


# ---------------------------------------------------------------------------------------------
# check_real


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (0, {"low": 0}, 0.0),
        (0.0, {"low": 0}, 0.0),
        (np.float32(0.5), {"low": 0, "high": 1, "closed": "left"}, 0.5),
        (np.float64(1e-3), {"low": 0, "closed": "neither"}, 1e-3),
        (np.int64(3), {"low": 0}, 3.0),
        (1.0, {"low": 0, "high": 1}, 1.0),
        (1.0, {"low": 0, "high": 1, "closed": "right"}, 1.0),
        (-2.5, {}, -2.5),
        (1e300, {"low": 0}, 1e300),
    ],
)
def test_check_real_accepts(value: object, kwargs: dict[str, object], expected: float) -> None:
    result = check_real("lr", value, **kwargs)  # type: ignore[arg-type]
    assert result == expected
    assert type(result) is float


@pytest.mark.parametrize(
    ("value", "kwargs", "constraint", "shown"),
    [
        (-1, {"low": 0}, "a float in the range [0, inf)", "-1"),
        (-1e-9, {"low": 0}, "a float in the range [0, inf)", "-1e-09"),
        (0.0, {"low": 0, "closed": "neither"}, "a float in the range (0, inf)", "0.0"),
        (0, {"low": 0, "closed": "right"}, "a float in the range (0, inf)", "0"),
        (1.0, {"low": 0, "high": 1, "closed": "left"}, "a float in the range [0, 1)", "1.0"),
        (1.5, {"low": 0, "high": 1}, "a float in the range [0, 1]", "1.5"),
        (math.nan, {"low": 0}, "a float in the range [0, inf)", "nan"),
        (math.inf, {"low": 0}, "a float in the range [0, inf)", "inf"),
        (-math.inf, {"high": 0}, "a float in the range (-inf, 0]", "-inf"),
        (math.inf, {}, "a finite float", "inf"),
        (np.float32("nan"), {"low": 0}, "a float in the range [0, inf)", repr(np.float32("nan"))),
        (True, {"low": 0}, "a float in the range [0, inf)", "True"),
        (False, {"low": 0, "high": 1, "closed": "left"}, "a float in the range [0, 1)", "False"),
        ("0.1", {"low": 0}, "a float in the range [0, inf)", "'0.1'"),
        (None, {"low": 0}, "a float in the range [0, inf)", "None"),
    ],
)
def test_check_real_refuses(
    value: object, kwargs: dict[str, object], constraint: str, shown: str
) -> None:
    with pytest.raises(ConfigError, match=_message("contraction", constraint, shown)):
        check_real("contraction", value, **kwargs)  # type: ignore[arg-type]


def test_check_real_names_the_owner() -> None:
    match = _message(
        "contraction", "a float in the range [0, inf)", "-1", owner="ContractiveAutoencoder"
    )
    with pytest.raises(ConfigError, match=match):
        check_real("contraction", -1, low=0, owner="ContractiveAutoencoder")


# ---------------------------------------------------------------------------------------------
# check_choice


def test_check_choice_accepts() -> None:
    assert check_choice("optimizer", "sgd", ("sgd", "adam")) == "sgd"
    assert check_choice("loss", "mse", {"bce": 1, "mse": 2}) == "mse"  # a mapping's keys


@pytest.mark.parametrize("value", ["rmsprop", "SGD", "", None, 1, ["sgd"]])
def test_check_choice_refuses(value: object) -> None:
    match = _message("optimizer", "a str among {'sgd', 'adam'}", repr(value))
    with pytest.raises(ConfigError, match=match):
        check_choice("optimizer", value, ("sgd", "adam"))


def test_check_choice_names_the_owner() -> None:
    match = _message("loss", "a str among {'auto', 'bce', 'mse'}", "'ce'", owner="fit")
    with pytest.raises(ConfigError, match=match):
        check_choice("loss", "ce", ["auto", "bce", "mse"], owner="fit")


# ---------------------------------------------------------------------------------------------
# check, parameter_error, check_output_dir


def test_check_returns_the_value_unchanged() -> None:
    value = np.float32(0.25)
    assert check("p", value, Interval(float, 0, 1)) is value
    assert check("optimizer", "adam", Options(("adam",))) == "adam"
    with pytest.raises(ConfigError, match=_message("p", "a float in the range [0, 1]", "2")):
        check("p", 2, Interval(float, 0, 1))
    match = _message("optimizer", "a str among {'adam'}", "'sgd'", owner="Trainer")
    with pytest.raises(ConfigError, match=match):
        check("optimizer", "sgd", Options(("adam",)), owner="Trainer")


def test_parameter_error() -> None:
    error = parameter_error("k", "at most min(d_h, d_x) = 3", 5)
    assert isinstance(error, ConfigError)
    assert isinstance(error, ValueError)
    assert str(error) == "The 'k' parameter must be at most min(d_h, d_x) = 3. Got 5 instead."
    error = parameter_error("n_components", Interval(int, 1), 0, owner="ContractiveAutoencoder")
    assert str(error) == (
        "The 'n_components' parameter of ContractiveAutoencoder must be an int in the range "
        "[1, inf). Got 0 instead."
    )


def test_check_output_dir(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path) == tmp_path
    assert check_output_dir(str(tmp_path / "new")) == tmp_path / "new"
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match=rf"^--out {re.escape(str(blocker))} exists and is not"):
        check_output_dir(blocker)
    with pytest.raises(ConfigError, match=r"^--samples .* exists and is not a folder\.$"):
        check_output_dir(blocker, flag="--samples")
