"""An experiment's protocol: its settings and grids, and how a grid point is selected.

A :class:`Protocol` is data: sizes, epochs, learning rates, each model's grid of
:class:`GridPoint`, the selection rule and the final fine-tuning. Every setting is a field
whose metadata gives its label (for the outputs and :func:`protocol_differences`) and, where
the command line may change it, its flag's help: ``contractive reproduce`` builds those flags
from here, as ``contractive train`` builds its flags from :class:`contractive.config.Config`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Config
from ..exceptions import ConfigError
from ..validation import check_choice, check_int, check_real

__all__ = [
    "SELECTION_RULES",
    "GridPoint",
    "Protocol",
    "autoencoder_config",
    "check_protocol",
    "grid",
    "protocol_differences",
    "protocol_json",
    "select_point",
]


@dataclass(frozen=True)
class GridPoint:
    """One point of a model's grid.

    Attributes
    ----------
    value : float or None
        The model's regularisation strength (the Config field its experiment names); None
        for a model without one (the plain AE).
    finetune_lr : float
        Initial learning rate of fine-tuning.

    Examples
    --------
    >>> GridPoint(1.0, 0.1).value
    1.0
    """

    value: float | None
    finetune_lr: float


def grid(values: Sequence[float | None], lrs: Sequence[float]) -> tuple[GridPoint, ...]:
    """Every value with every learning rate, values first: ``grid((1, 3), (0.1,))``.

    Examples
    --------
    >>> grid((1.0, 3.0), (0.1,))
    (GridPoint(value=1.0, finetune_lr=0.1), GridPoint(value=3.0, finetune_lr=0.1))
    """
    return tuple(GridPoint(v, lr) for v in values for lr in lrs)


def _setting(
    label: str,
    *,
    flag: str | None = None,
    kind: str = "positive_int",
    metavar: str = "N",
) -> dict[str, Any]:
    """The metadata of a Protocol field that is one setting of the protocol.

    ``label`` words it in :func:`protocol_differences` and in the outputs; ``flag``, when
    given, is the help of the ``contractive reproduce`` flag that changes it (``--NAME``,
    read with the :mod:`contractive.cli.argtypes` converter named ``kind``).
    """
    return {"label": label, "flag": flag, "kind": kind, "metavar": metavar}


def _final_dropout(on: str) -> dict[str, Any]:
    """The metadata of the final fine-tuning's dropout probability on the ``on`` units."""
    return _setting(
        f"final fine-tuning dropout on the {on}",
        flag=f"dropout on the {on} in the final fine-tuning",
        kind="probability",
        metavar="P",
    )


@dataclass(frozen=True)
class Protocol:
    """Sizes, epochs and grids of one run of an experiment (Table 1's: its FULL and QUICK).

    Attributes
    ----------
    name : str
        ``"full"`` or ``"quick"`` (``"custom"`` once changed from the command line).
    train_size : int
        The first ``train_size`` MNIST training images are the training set.
    val_size : int
        The last ``val_size`` training images are the validation set (never trained on).
    hidden : int
        Units of the hidden layer.
    pretrain_epochs, pretrain_lr, pretrain_batch_size
        Unsupervised training (Adam).
    finetune_epochs, finetune_batch_size, patience
        Supervised fine-tuning (SGD, momentum 0.9, cosine decay; stop after ``patience``
        epochs without a lower validation error, 0 = never).
    probe_size : int
        Training images of the linear probe (the first ones of the training set).
    grids : mapping of str to tuple of GridPoint
        Each model's grid, in the order the points are tried (ties go to the earlier point).
    selection : {"min", "one-se"}
        How the grid point is chosen from its validation errors (see :func:`select_point`).
    final_epochs, final_lr, final_dropout, final_input_dropout
        The final fine-tuning: the selected point's pre-trained encoder is fine-tuned once
        more, from its pre-trained weights, for ``final_epochs`` epochs (SGD, momentum 0.9,
        batch ``finetune_batch_size``, cosine decay from ``final_lr``, dropout
        ``final_dropout`` on the codes and ``final_input_dropout`` on the pixels, the weights
        of the best validation epoch kept), and that classifier is the one tested. Dropout
        needs many epochs, too many to give every grid point, so the grid is compared on the
        cheaper fine-tuning above. ``final_epochs = 0`` skips it: the selected point's own
        classifier is tested.
    seed : int
        Seeds every initialisation, shuffle and noise draw.
    test_size : int
        Test on the first ``test_size`` test images; 0 (the default) tests on all of them.

    Examples
    --------
    >>> p = Protocol("p", 100, 10, 8, 20, 1e-3, 128, 20, 64, 0, 50, {"AE": (GridPoint(None, 0.1),)})
    >>> p.models, p.final_epochs
    (('AE',), 0)
    """

    name: str
    train_size: int = field(
        metadata=_setting("training images", flag="the first N training images train")
    )
    val_size: int = field(
        metadata=_setting("validation images", flag="the last N training images validate")
    )
    hidden: int = field(metadata=_setting("hidden units", flag="hidden units"))
    pretrain_epochs: int = field(
        metadata=_setting("pre-training epochs", flag="pre-training epochs")
    )
    pretrain_lr: float = field(metadata=_setting("pre-training learning rate"))
    pretrain_batch_size: int = field(metadata=_setting("pre-training batch size"))
    finetune_epochs: int = field(
        metadata=_setting("fine-tuning epochs", flag="fine-tuning epochs of each grid point")
    )
    finetune_batch_size: int = field(metadata=_setting("fine-tuning batch size"))
    patience: int = field(metadata=_setting("early-stopping patience"))
    probe_size: int = field(
        metadata=_setting(
            "linear-probe training images", flag="training images of the linear probe"
        )
    )
    grids: Mapping[str, tuple[GridPoint, ...]] = field(hash=False)
    selection: str = field(default="min", metadata=_setting("grid selection rule"))
    final_epochs: int = field(
        default=0,
        metadata=_setting(
            "final fine-tuning epochs",
            flag="epochs of the final fine-tuning, 0 to test the selected grid point's own "
            "classifier",
            kind="non_negative_int",
        ),
    )
    final_lr: float = field(
        default=0.2,
        metadata=_setting(
            "final fine-tuning learning rate",
            flag="initial learning rate of the final fine-tuning",
            kind="positive_float",
            metavar="LR",
        ),
    )
    final_dropout: float = field(default=0.5, metadata=_final_dropout("codes"))
    final_input_dropout: float = field(default=0.2, metadata=_final_dropout("pixels"))
    seed: int = field(default=0, metadata=_setting("seed"))
    test_size: int = field(
        default=0,
        metadata=_setting(
            "test images",
            flag="test on the first N test images, 0 for all of them",
            kind="non_negative_int",
        ),
    )

    @property
    def models(self) -> tuple[str, ...]:
        """The models this protocol trains, in the order of :attr:`grids`."""
        return tuple(self.grids)

    def values(self, model: str) -> list[float | None]:
        """The distinct values of ``model``'s grid, in grid order: one pre-training each."""
        return list(dict.fromkeys(point.value for point in self.grids[model]))

    @staticmethod
    def settings() -> list[dataclasses.Field[Any]]:
        """The fields that are settings (each with a ``label``, some with a flag)."""
        return [f for f in dataclasses.fields(Protocol) if "label" in f.metadata]


def autoencoder_config(
    protocol: Protocol, knob: str | None, value: float | None, device: str, *, seed: int
) -> Config:
    """The Config that pre-trains one autoencoder layer of a paper experiment.

    ``protocol.hidden`` sigmoid units, tied weights, cross-entropy, Adam at the protocol's
    pre-training settings, no validation split; ``knob`` (a Config field such as
    ``"contraction"``, or None) set to ``value`` and every other regulariser off.

    Examples
    --------
    >>> p = Protocol("p", 100, 10, 8, 20, 1e-3, 128, 20, 64, 0, 50, {})
    >>> cfg = autoencoder_config(p, "mask_prob", 0.25, "cpu", seed=3)
    >>> cfg.hidden, cfg.mask_prob, cfg.contraction, cfg.seed
    ([8], 0.25, 0.0, 3)
    """
    # contraction defaults to 0.1 in Config: every model but a CAE must switch it off.
    config = Config(
        hidden=[protocol.hidden],
        activation="sigmoid",
        tied=True,
        loss="bce",
        optimizer="adam",
        lr=protocol.pretrain_lr,
        batch_size=protocol.pretrain_batch_size,
        epochs=protocol.pretrain_epochs,
        validation_fraction=0.0,
        patience=0,
        seed=seed,
        device=device,
        contraction=0.0,
    )
    if knob is None:
        return config
    if value is None:
        raise ConfigError(f"The grid value of {knob!r} must be a number. Got None instead.")
    return config.replace(**{knob: value})


#: The rules :func:`select_point` knows.
SELECTION_RULES = ("min", "one-se")


def select_point(
    errors: Sequence[float],
    strengths: Sequence[float | None],
    *,
    n_val: int,
    rule: str = "one-se",
) -> int:
    """Index of the grid point to keep, from the points' validation errors.

    ``"min"`` keeps the lowest error (ties: the earlier point). ``"one-se"`` is the
    one-standard-error rule (Breiman et al., 1984; Hastie et al., *The Elements of
    Statistical Learning*, 7.10): among the points whose error is within one standard error
    ``sqrt(e (1 - e) / n_val)`` of the lowest error ``e``, keep the one with the strongest
    regularisation (the largest ``strength``), and among those the lowest error. On 10000
    validation images at ``e = 1.4 %`` one standard error is 0.12 points, about 12 images:
    differences smaller than that do not tell the points apart, and the rule then prefers
    the more regularised model.

    Parameters
    ----------
    errors : sequence of float
        Validation error of each point, as fractions in [0, 1].
    strengths : sequence of float or None
        Each point's regularisation strength (lambda, noise level, weight decay); None for
        points that have none (the plain AE), which the rule then compares by error alone.
    n_val : int
        Validation images behind each error.
    rule : {"min", "one-se"}

    Returns
    -------
    int

    Examples
    --------
    >>> select_point([0.0138, 0.0139, 0.0163], [0.3, 1.0, 3.0], n_val=10_000, rule="min")
    0
    >>> select_point([0.0138, 0.0139, 0.0163], [0.3, 1.0, 3.0], n_val=10_000, rule="one-se")
    1
    """
    check_choice("selection", rule, SELECTION_RULES)
    if not errors or len(errors) != len(strengths):
        raise ConfigError(
            "select_point needs one strength per error and at least one point. Got "
            f"{len(errors)} error(s) and {len(strengths)} strength(s)."
        )
    best = min(range(len(errors)), key=lambda i: (errors[i], i))
    if rule == "min":
        return best
    se = math.sqrt(errors[best] * (1.0 - errors[best]) / n_val)
    close = [i for i in range(len(errors)) if errors[i] <= errors[best] + se]
    # The strongest regularisation among the close points; None counts as no strength.
    return min(close, key=lambda i: (-(strengths[i] or 0.0), errors[i], i))


def check_protocol(protocol: Protocol, models: Sequence[str]) -> Protocol:
    """``protocol`` checked against the experiment's ``models``, with its checked numbers as
    Python ints and floats.

    Examples
    --------
    >>> import numpy as np
    >>> grid = {"AE": (GridPoint(None, 0.1),)}
    >>> p = Protocol("p", np.int64(100), 10, 8, 20, 1e-3, 128, 20, 64, 0, 50, grid)
    >>> type(check_protocol(p, ["AE"]).train_size)
    <class 'int'>
    >>> check_protocol(dataclasses.replace(p, hidden=0), ["AE"])
    Traceback (most recent call last):
    ...
    contractive.exceptions.ConfigError: The 'hidden' parameter must be an int in the range [1, ...
    """
    checked: dict[str, Any] = {
        name: check_int(name, getattr(protocol, name), low=1)
        for name in (
            "train_size",
            "val_size",
            "hidden",
            "pretrain_epochs",
            "pretrain_batch_size",
            "finetune_epochs",
            "finetune_batch_size",
            "probe_size",
        )
    }
    check_choice("selection", protocol.selection, SELECTION_RULES)
    checked["final_epochs"] = check_int("final_epochs", protocol.final_epochs, low=0)
    checked["test_size"] = check_int("test_size", protocol.test_size, low=0)
    # Checked here too, not only by finetune(), so that a bad value fails before the first
    # pre-training rather than an hour into the run.
    checked["final_lr"] = check_real("final_lr", protocol.final_lr, low=0, closed="neither")
    for name in ("final_dropout", "final_input_dropout"):
        checked[name] = check_real(name, getattr(protocol, name), low=0, high=1, closed="left")
    unknown = sorted(set(protocol.grids) - set(models))
    if unknown or not protocol.grids:
        raise ConfigError(
            f"The 'models' parameter must name at least one of {', '.join(models)}. "
            f"Got {', '.join(unknown) or 'none'} instead."
        )
    if any(not grid for grid in protocol.grids.values()):
        raise ConfigError("Every model's grid must hold at least one GridPoint.")
    return dataclasses.replace(protocol, **checked)


def protocol_json(protocol: Protocol) -> dict[str, Any]:
    """``protocol`` as JSON-ready values (its grids as lists of objects).

    Examples
    --------
    >>> grid = {"AE": (GridPoint(None, 0.1),)}
    >>> p = Protocol("p", 100, 10, 8, 20, 1e-3, 128, 20, 64, 0, 50, grid)
    >>> protocol_json(p)["grids"]
    {'AE': [{'value': None, 'finetune_lr': 0.1}]}
    """
    out = {f.name: getattr(protocol, f.name) for f in dataclasses.fields(protocol)}
    out["grids"] = {
        model: [dataclasses.asdict(p) for p in grid] for model, grid in protocol.grids.items()
    }
    return out


def _value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def protocol_differences(
    protocol: Protocol, reference: Protocol, point_text: Callable[[str, GridPoint], str]
) -> list[str]:
    """What ``protocol`` changes with respect to ``reference``, one phrase per change.

    ``point_text(model, point)`` words a grid point (its experiment knows the model's knob).

    Examples
    --------
    >>> grid = {"AE": (GridPoint(None, 0.1),)}
    >>> full = Protocol("full", 100, 10, 8, 20, 1e-3, 128, 20, 64, 0, 50, grid)
    >>> quick = dataclasses.replace(full, pretrain_epochs=4, finetune_epochs=15)
    >>> protocol_differences(quick, full, lambda m, p: f"lr={p.finetune_lr:g}")
    ['pre-training epochs 20 -> 4', 'fine-tuning epochs 20 -> 15']
    """
    changes = []
    for setting in Protocol.settings():
        ours, theirs = getattr(protocol, setting.name), getattr(reference, setting.name)
        if ours != theirs:
            label = setting.metadata["label"]
            changes.append(f"{label} {_value_text(theirs)} -> {_value_text(ours)}")
    left_out = [m for m in reference.models if m not in protocol.grids]
    if left_out:
        changes.append(f"models left out: {', '.join(left_out)}")
    for model in protocol.models:
        ours_grid, theirs_grid = protocol.grids[model], reference.grids.get(model)
        if ours_grid != theirs_grid:
            points = "; ".join(point_text(model, p) for p in ours_grid)
            size = len(theirs_grid) if theirs_grid else 0
            changes.append(f"{model} grid: {len(ours_grid)} point(s) instead of {size} ({points})")
    return changes
