"""One configuration for a training run, shared by the Python API, TOML files and the CLI.

:class:`Config` is the single source of every option: the ``contractive train`` command builds
its flags from the fields below (their ``help`` metadata is the flag's help), a TOML file sets
the same keys, and ``config.json`` in a run folder stores them. Every default carries a comment
saying why.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .exceptions import ConfigError
from .losses import LOSSES
from .nn import ACTIVATIONS
from .penalties import METHODS
from .validation import (
    Interval,
    Options,
    check,
    check_int,
    is_bool,
    is_int,
    is_real,
    parameter_error,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["CONFIG_FORMAT_VERSION", "LATER_OPTIONS", "Config", "load_toml"]

#: Bumped when config.json changes incompatibly; a newer file is refused with a clear message.
CONFIG_FORMAT_VERSION = 1

#: Options added to format 1 after runs were written without them. A config.json that lacks
#: one of these was written before it existed, and the option's default is what that run was
#: trained with (``greedy``: a jointly trained model); any other missing option is an error.
LATER_OPTIONS = frozenset({"greedy"})

_OPTIMIZERS = ("adam", "sgd")
_SCHEDULES = ("none", "cosine", "step")
_LOSSES = ("bce", "mse")
_ARCHITECTURES = ("mlp", "conv")
_SCALES = ("auto", "minmax", "none")


# The ranges of the numeric options; each is the whole check of its option's value.
_POSITIVE_INT = Interval(int, 1)
_NON_NEGATIVE_INT = Interval(int, 0)
_NON_NEGATIVE = Interval(float, 0)
_POSITIVE = Interval(float, 0, closed="neither")
_UNIT = Interval(float, 0, 1)
_FRACTION = Interval(float, 0, 1, closed="left")


def _opt(
    default: Any,
    help: str,
    *,
    choices: tuple[str, ...] | None = None,
    valid: Interval | None = None,
    **kw: Any,
) -> Any:
    constraint = Options(choices) if choices else valid
    meta = {"help": help, "choices": choices, "constraint": constraint}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class Config:
    """Everything a training run needs; ``contractive train`` exposes each field as a flag.

    Examples
    --------
    >>> cfg = Config(hidden=[32], epochs=2)
    >>> cfg.contraction
    0.1
    >>> Config.from_dict({"epochs": 3}).epochs
    3
    """

    # --- data -------------------------------------------------------------------------------
    # The bundled digits need no download, so the default run works offline.
    data: str = _opt(
        "digits",
        "a dataset name (`contractive data NAME` describes it) or a .npy/.npz/.csv path",
    )
    data_dir: str | None = _opt(None, "folder holding the dataset files (else cache/download)")
    # Image sets are divided by 255 under "auto"; user files are taken as they are.
    scale: str = _opt("auto", "scaling of the inputs", choices=_SCALES)
    label_column: str | None = _opt(None, "CSV/NPZ label column (name or index), if any")

    # --- model ------------------------------------------------------------------------------
    architecture: str = _opt("mlp", "encoder type", choices=_ARCHITECTURES)
    # One sigmoid layer is the paper's CAE; 100 units keep the digits demo under a minute.
    hidden: list[int] = _opt([100], "hidden sizes (mlp) or channels (conv), comma-separated")  # noqa: RUF009
    # Joint training is the default; the paper's CAE-2 trains its two layers greedily.
    greedy: bool = _opt(
        False, "train the hidden layers one at a time, each on the codes of the one below"
    )
    activation: str = _opt("sigmoid", "encoder activation", choices=tuple(ACTIVATIONS))
    # Tying rules out the 'shrink in the encoder, grow in the decoder' solution (paper, 1).
    tied: bool = _opt(True, "decoder uses the transposed encoder weights")
    # Cross-entropy with a sigmoid output is the paper's choice for data in [0, 1].
    loss: str = _opt("bce", "reconstruction loss (bce needs data in [0, 1])", choices=_LOSSES)
    kernel_size: int = _opt(5, "conv kernel size", valid=_POSITIVE_INT)
    stride: int = _opt(2, "conv stride", valid=_POSITIVE_INT)
    padding: int = _opt(2, "conv zero padding", valid=_NON_NEGATIVE_INT)

    # --- objective --------------------------------------------------------------------------
    # lambda on the per-sample ||J||_F^2, on the scale of a loss summed over features.
    contraction: float = _opt(0.1, "lambda: weight of the Jacobian penalty", valid=_NON_NEGATIVE)
    penalty: str = _opt("auto", "how ||J_f(x)||_F^2 is computed", choices=METHODS)
    probes: int = _opt(
        1, "random directions per sample for --penalty hutchinson", valid=_POSITIVE_INT
    )
    # CAE+H is off unless asked for: it costs `ho_corruptions` extra encoder passes.
    higher_order: float = _opt(
        0.0, "gamma: weight of the CAE+H Hessian penalty", valid=_NON_NEGATIVE
    )
    ho_sigma: float = _opt(0.1, "std of the CAE+H input corruption", valid=_POSITIVE)
    ho_corruptions: int = _opt(4, "corrupted copies per sample for CAE+H", valid=_POSITIVE_INT)
    weight_decay: float = _opt(
        0.0, "L2 penalty on the weights (AE+wd baseline)", valid=_NON_NEGATIVE
    )
    noise_std: float = _opt(0.0, "Gaussian input noise std (DAE-g)", valid=_NON_NEGATIVE)
    mask_prob: float = _opt(0.0, "masking noise probability (DAE-b)", valid=_UNIT)

    # --- optimisation -----------------------------------------------------------------------
    # Adam converges in a few epochs without tuning; plain SGD is there for the paper's setup.
    optimizer: str = _opt("adam", "optimizer", choices=_OPTIMIZERS)
    lr: float = _opt(1e-3, "learning rate", valid=_POSITIVE)
    momentum: float = _opt(0.9, "SGD momentum", valid=_UNIT)
    # 128 fills two cores' matrix units; smaller batches are dominated by per-step overhead.
    batch_size: int = _opt(128, "minibatch size", valid=_POSITIVE_INT)
    epochs: int = _opt(20, "passes over the training data", valid=_POSITIVE_INT)
    schedule: str = _opt("none", "learning-rate schedule over epochs", choices=_SCHEDULES)
    validation_fraction: float = _opt(
        0.1, "fraction of the training data held out", valid=_FRACTION
    )
    # Early stopping is off by default: a CAE's validation loss rarely rises.
    patience: int = _opt(
        0, "early stopping: epochs without improvement (0: off)", valid=_NON_NEGATIVE_INT
    )
    seed: int = _opt(
        0, "random seed (initialisation, shuffling, noise, probes)", valid=_NON_NEGATIVE_INT
    )
    device: str = _opt("auto", "cpu, cuda, cuda:N, or auto (cuda when available)")
    bf16: bool = _opt(False, "bfloat16 autocast on CUDA")
    # Epoch-end checkpoints are cheap; step checkpoints are for very long epochs.
    checkpoint_every: int = _opt(
        0, "also checkpoint every N steps (0: epoch ends only)", valid=_NON_NEGATIVE_INT
    )

    # ------------------------------------------------------------------------------------------

    def __post_init__(self) -> None:
        # Config(...) built in Python is checked like a TOML file or the command line, so that a
        # NaN lambda or a zero batch size fails here, naming the option, not deep in training.
        hints = _field_types()
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            setattr(self, f.name, _coerce(f.name, value, hints[f.name], "config"))
        self.validate()

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of every option, in declaration order."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], *, source: str = "config") -> Config:
        """Build and validate a config from a mapping; unknown keys are an error.

        Parameters
        ----------
        values : mapping
            Option names to values, e.g. parsed from TOML or JSON.
        source : str
            Where the values came from, for error messages.
        """
        valid = cls.field_names()
        unknown = sorted(set(values) - set(valid))
        if unknown:
            raise ConfigError(
                f"Unknown key(s) in {source}: {', '.join(unknown)}. Valid keys: {', '.join(valid)}."
            )
        hints = _field_types()
        kwargs = {k: _coerce(k, v, hints[k], source) for k, v in values.items()}
        return cls(**kwargs)  # __post_init__ validates

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every option."""
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Config:
        """A validated copy with some options changed."""
        merged = {**self.to_dict(), **changes}
        return Config.from_dict(merged)

    @classmethod
    def constraint(cls, name: str) -> Interval | Options | None:
        """The range or the choices that a valid value of option ``name`` is in.

        None for the options checked otherwise (``hidden``, ``device``, the paths, ...).
        :class:`~contractive.estimator.ContractiveAutoencoder` checks its parameters that are
        options with these, so that both word the same constraint the same way.

        Examples
        --------
        >>> str(Config.constraint("lr")), 0.0 in Config.constraint("lr")
        ('a float in the range (0, inf)', False)
        >>> str(Config.constraint("optimizer"))
        "a str among {'adam', 'sgd'}"
        """
        constraint: Interval | Options | None = _fields()[name].metadata["constraint"]
        return constraint

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid option, its constraint and value."""
        for name, f in _fields().items():
            if f.metadata["constraint"] is not None:
                check(name, getattr(self, name), f.metadata["constraint"])
        if not self.hidden or any(h not in _POSITIVE_INT for h in self.hidden):
            raise parameter_error(
                "hidden",
                f"a non-empty list of ints in the range {_POSITIVE_INT.range}",
                self.hidden,
            )
        if self.device != "auto" and not (
            self.device == "cpu" or self.device == "cuda" or self.device.startswith("cuda:")
        ):
            raise parameter_error("device", "'auto', 'cpu', 'cuda' or 'cuda:N'", self.device)
        if self.greedy:
            self._validate_greedy()

    def _validate_greedy(self) -> None:
        # What a greedy stack cannot be; each rule names the option to change.
        if self.architecture != "mlp":
            raise parameter_error(
                "architecture",
                "'mlp' when greedy=True (a greedy stack is MLP layers)",
                self.architecture,
            )
        if self.checkpoint_every:
            raise parameter_error(
                "checkpoint_every",
                "0 when greedy=True (a greedy stack is not checkpointed: it cannot be resumed)",
                self.checkpoint_every,
            )
        needed = LOSSES[self.loss][1]  # the output activation a layer with this loss has
        if len(self.hidden) > 1 and self.activation != needed:
            # Layer k+1 reconstructs layer k's codes through its loss's output activation; the
            # deep model decodes them through the hidden activation. They must be the same.
            raise parameter_error(
                "activation",
                f"{needed!r} with loss={self.loss!r} when greedy=True and there are several "
                "hidden layers (an upper layer decodes through the output activation of its "
                "loss, which must be the hidden activation for the stack to be one "
                "autoencoder)",
                self.activation,
            )


@functools.cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(Config)


@functools.cache
def _fields() -> dict[str, dataclasses.Field[Any]]:
    return {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name: str, value: Any, hint: Any, source: str) -> Any:
    """Check a raw value against a field's type; ints are accepted where floats are.

    Only the type: NaN passes here, so that the range check words what is wrong with it.
    NumPy scalars are accepted and become Python ones (``np.int64(3)`` -> ``3``).
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is bool:
        if is_bool(value):
            return bool(value)
        raise parameter_error(name, "a bool", value)
    if hint is int:
        return check_int(name, value)
    if hint is float:
        if is_real(value):
            return float(value)
        raise parameter_error(name, "a float", value)
    if hint is str:
        if isinstance(value, str):
            return value
        if name == "label_column" and is_int(value):
            return str(value)
        raise parameter_error(name, "a str", value)
    if origin is list and args == (int,):
        if is_int(value):
            return [int(value)]
        if isinstance(value, list | tuple) and all(is_int(v) for v in value):
            return [int(v) for v in value]
        raise parameter_error(name, "a list of ints", value)
    raise ConfigError(f"Cannot read the '{name}' parameter from {source}.")  # pragma: no cover


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file into a flat dict of options.

    Tables (``[model]``, ``[train]``, ...) are allowed for readability and flattened: their keys
    are the same option names as at the top level.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "cae.toml"
    >>> _ = path.write_text('data = "digits"\\n[model]\\nhidden = [64]\\n[train]\\nepochs = 3\\n')
    >>> options = load_toml(path)
    >>> options
    {'data': 'digits', 'hidden': [64], 'epochs': 3}
    >>> Config.from_dict(options, source=str(path)).hidden
    [64]
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"No such config file: {path}") from None
    except OSError as exc:  # a folder, no permission, ...
        raise ConfigError(f"Cannot read the config file {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: it is not UTF-8 text ({exc})") from None
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for k, v in items:
            if k in flat:
                raise ConfigError(f"{path} sets '{k}' twice.")
            flat[k] = v
    return flat


def config_to_json(config: Config, extra: Mapping[str, Any]) -> str:
    """The text of a run folder's config.json: the options plus what the run derived."""
    payload = {"format_version": CONFIG_FORMAT_VERSION, "config": config.to_dict(), **extra}
    return json.dumps(payload, indent=2, sort_keys=False) + "\n"
