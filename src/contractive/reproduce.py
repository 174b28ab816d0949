"""``contractive reproduce table1``: Table 1 of Rifai et al. (2011) on MNIST, in one command.

The protocol (paper, section "Evaluation protocol"):

1. Pre-train one hidden layer of 1000 sigmoid units with tied weights and cross-entropy
   reconstruction, as each of five models: CAE (``contraction`` lambda), DAE-g (Gaussian input
   noise ``noise_std``), DAE-b (masking noise ``mask_prob``), AE + weight decay
   (``weight_decay``) and a plain AE, on the first 50000 MNIST training images.
2. Measure, on the validation set (the last 10000 training images) and before fine-tuning,
   the mean ``||J_f(x)||_F`` and SAT.
3. Fine-tune an MLP initialised from the encoder (:func:`contractive.evaluate.finetune`) with
   early stopping on the validation error.
4. For each model, keep the grid point (regularisation strength, fine-tuning learning rate)
   with the lowest validation error, and report its test error on the 10000 test images.

Every grid point uses the same seed (initial weights, shuffling, noise), so the models differ
only in their objective. Results go to ``OUT/table1.md`` (the table, the paper's figures beside
ours, the definitions), ``OUT/table1.json`` (one object per model) and ``OUT/table1_run.json``
(settings, timings, environment); all three are rewritten atomically after every model, so an
interrupted run leaves the finished rows readable.

The full protocol is sized for 90 minutes on 2 CPU cores (see :func:`planned_seconds`);
``--quick`` shortens it to under 10 minutes and says what it shortened.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ._argtypes import non_negative_int, positive_float, positive_int, probability
from .analysis import mean_jacobian_norm, saturation
from .config import Config
from .evaluate import (
    FinetuneResult,
    encode,
    finetune,
    linear_probe,
    test_error,
    train_stack,
)
from .exceptions import ConfigError
from .locking import RunLock
from .nn import Autoencoder
from .train import Callback, EpochMetrics, Trainer, resolve_device
from .validation import check_choice, check_int, check_output_dir, check_real

__all__ = [
    "EXPERIMENTS",
    "FULL",
    "MODELS",
    "PAPER_TABLE1",
    "QUICK",
    "SELECTION_RULES",
    "GridPoint",
    "PaperRow",
    "Protocol",
    "add_reproduce_arguments",
    "cmd_reproduce",
    "planned_seconds",
    "protocol_differences",
    "run_table1",
    "select_point",
]

#: Experiments ``contractive reproduce`` knows.
EXPERIMENTS = ("table1",)
#: The models of Table 1 that we train, in the paper's order (the RBM is not reproduced).
MODELS = ("CAE", "DAE-g", "DAE-b", "AE+wd", "AE")


@dataclass(frozen=True)
class PaperRow:
    """One MNIST row of the paper's Table 1: test error %, mean ||J_f(x)||_F, SAT %."""

    test_error: float
    jacobian_norm: float
    sat: float


#: Rifai et al. (2011), Table 1, MNIST (confirmed in the paper; see /shared/PAPER.md).
PAPER_TABLE1: dict[str, PaperRow] = {
    "CAE": PaperRow(1.14, 0.73e-4, 86.36),
    "DAE-g": PaperRow(1.18, 0.86e-4, 17.77),
    "RBM-binary": PaperRow(1.30, 2.50e-4, 78.59),
    "DAE-b": PaperRow(1.57, 7.87e-4, 68.19),
    "AE+wd": PaperRow(1.68, 5.00e-4, 12.97),
    "AE": PaperRow(1.78, 17.5e-4, 49.90),
}

# The Config field each model's grid varies (the AE has none: its grid is the learning rate).
_KNOBS: dict[str, str | None] = {
    "CAE": "contraction",
    "DAE-g": "noise_std",
    "DAE-b": "mask_prob",
    "AE+wd": "weight_decay",
    "AE": None,
}
_KNOB_SYMBOLS = {
    "contraction": "lambda",
    "noise_std": "sigma",
    "mask_prob": "p",
    "weight_decay": "wd",
}

# Seconds per epoch over 50000 MNIST images with 1000 hidden units, float32, measured with
# this code in one process of one torch thread on a 2-core machine whose other core ran a
# second such process (alone, or with two threads on idle cores, it is faster);
# planned_seconds() scales them.
_PRETRAIN_EPOCH_S = 10.0  # batch 128, Adam, tied weights, analytic Jacobian penalty
_FINETUNE_EPOCH_S = 5.6  # batch 64, SGD, validation error of 10000 images included
_FINAL_EPOCH_S = 8.3  # the same with dropout on 784 + 1000 units: drawing the masks costs
# One process alone on the machine ran at about 0.8 of these times (0.7-0.9 by phase).
_ALONE = 0.8
# Five processes on the 2 cores got 1.4 times less done per CPU-second than two (each
# process's ~15 MB of weights, Adam moments and activations evict the others' from cache).
_OVERSUBSCRIBED = 1.4
_PROBE_S = 12.0  # logistic regression on 10000 codes, codes of the test set
# L-BFGS iterations of the probe: a cheap second view, not a converged classifier (1000
# iterations cost about a minute per model on one core, 100 a few seconds).
_PROBE_ITER = 100


@dataclass(frozen=True)
class GridPoint:
    """One point of a model's grid.

    Attributes
    ----------
    value : float or None
        The model's regularisation strength (its Config field, see :data:`MODELS`); None for
        the plain AE.
    finetune_lr : float
        Initial learning rate of fine-tuning.
    """

    value: float | None
    finetune_lr: float


def _grid(values: Sequence[float | None], lrs: Sequence[float]) -> tuple[GridPoint, ...]:
    return tuple(GridPoint(v, lr) for v in values for lr in lrs)


@dataclass(frozen=True)
class Protocol:
    """Sizes, epochs and grids of one Table 1 run; :data:`FULL` and :data:`QUICK` are the two.

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
    """

    name: str
    train_size: int
    val_size: int
    hidden: int
    pretrain_epochs: int
    pretrain_lr: float
    pretrain_batch_size: int
    finetune_epochs: int
    finetune_batch_size: int
    patience: int
    probe_size: int
    grids: Mapping[str, tuple[GridPoint, ...]] = field(hash=False)
    selection: str = "min"
    final_epochs: int = 0
    final_lr: float = 0.2
    final_dropout: float = 0.5
    final_input_dropout: float = 0.2
    seed: int = 0

    @property
    def models(self) -> tuple[str, ...]:
        """The models this protocol trains, in table order."""
        return tuple(m for m in MODELS if m in self.grids)


#: The full protocol: 3 grid points per model, then the final fine-tuning of the selected one.
FULL = Protocol(
    name="full",
    train_size=50_000,
    val_size=10_000,
    hidden=1000,
    pretrain_epochs=20,
    pretrain_lr=1e-3,
    pretrain_batch_size=128,
    # 20 epochs compare the grid points (30 gave the CAE 1.39% at lambda 1, 20 saves the time
    # of the final fine-tuning); the final one needs 100 (see docs/reproduction.md).
    finetune_epochs=20,
    finetune_batch_size=64,
    patience=10,
    probe_size=10_000,
    # lr 0.2, dropout 0.5 / 0.2, 100 epochs: 1.12% validation error for the CAE at lambda 1,
    # against 1.28% in 50 epochs, and 1.39% at lr 0.4 or 1.35% at lr 0.1 (60 epochs).
    selection="one-se",
    final_epochs=100,
    final_lr=0.2,
    final_dropout=0.5,
    final_input_dropout=0.2,
    grids={
        # Fine-tuning lr 0.1: on the CAE (lambda 0.3, 1, 3) it beat 0.3 and 0.03 by 0.1-0.25
        # points of validation error, and the AE's grid below also picked it.
        "CAE": _grid((0.3, 1.0, 3.0), (0.1,)),
        "DAE-g": _grid((0.1, 0.25, 0.5), (0.1,)),
        "DAE-b": _grid((0.1, 0.25, 0.5), (0.1,)),
        "AE+wd": _grid((1e-4, 1e-3, 1e-2), (0.1,)),
        # No regularisation knob, and one encoder for every point: with a final fine-tuning
        # (at its own lr, for every model) there is nothing for an AE grid to choose.
        "AE": _grid((None,), (0.1,)),
    },
)

#: ``--quick``: the same data, fewer epochs, one grid point per model (the full grid's middle),
#: no final fine-tuning.
QUICK = dataclasses.replace(
    FULL,
    name="quick",
    pretrain_epochs=4,
    finetune_epochs=15,
    patience=0,
    final_epochs=0,
    probe_size=5_000,
    grids={
        "CAE": _grid((1.0,), (0.1,)),
        "DAE-g": _grid((0.25,), (0.1,)),
        "DAE-b": _grid((0.25,), (0.1,)),
        "AE+wd": _grid((1e-3,), (0.1,)),
        "AE": _grid((None,), (0.1,)),
    },
)

_DEFINITIONS = {
    "test_error": "% of the MNIST test images (all 10000) misclassified by the tested "
    "classifier: the selected grid point's encoder after the final fine-tuning (or the grid "
    "point's own classifier when the protocol has none).",
    "val_error": "% of the validation images (the last training images, never trained on) "
    "misclassified by the tested classifier: after the final fine-tuning when the protocol "
    "has one, else the selected grid point's.",
    "selection_val_error": "the selected grid point's validation error %, after the grid's "
    "fine-tuning (see Selection under Settings for the rule).",
    "mean_jacobian_norm": "mean over the validation images of ||J_f(x)||_F, the Frobenius norm "
    "of the encoder's (hidden x 784) Jacobian at x, pixels in [0, 1], before fine-tuning; per "
    "image, not squared, not divided by the number of entries (the paper does not say how its "
    "much smaller figures were normalised).",
    "sat": "% of (validation image, hidden unit) pairs with activation < 0.05 or > 0.95, "
    "before fine-tuning (= the per-image saturated fraction, averaged).",
    "probe_test_error": "% test error of multinomial logistic regression (C=1, at most 100 "
    "L-BFGS iterations) on the frozen codes of the selected encoder, trained on the first "
    "probe_size training images.",
    "wall_seconds": "seconds for everything this row took: pre-training and fine-tuning every "
    "grid point, the final fine-tuning, then the test error, the Jacobian norm, SAT and the "
    "probe.",
}


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


def _model_seconds(protocol: Protocol, model: str) -> float:
    """Planned seconds of one model's row (every grid point, the final fine-tuning, the probe)."""
    scale = protocol.train_size * protocol.hidden / (50_000 * 1000)
    grid = protocol.grids[model]
    return (
        len({p.value for p in grid}) * protocol.pretrain_epochs * _PRETRAIN_EPOCH_S * scale
        + len(grid) * protocol.finetune_epochs * _FINETUNE_EPOCH_S * scale
        + protocol.final_epochs * _FINAL_EPOCH_S * scale
        + _PROBE_S * protocol.probe_size / 10_000
    )


def planned_seconds(protocol: Protocol, *, jobs: int = 1, cores: int = 2) -> float:
    """Wall time the protocol is planned to take on ``cores`` CPU cores, in seconds.

    Counts each distinct pre-training once, every fine-tuning of the grid at its full
    ``finetune_epochs`` (early stopping only makes it shorter) and the final fine-tuning.
    Per-epoch costs were measured on 50000 images with 1000 hidden units, one torch thread
    per process, and scale with ``train_size * hidden``. With ``jobs`` processes the models
    are handed out in table order to whichever process is free first, as :func:`run_table1`
    does, and the plan is the time the last one finishes. With more processes than
    ``cores``, the operating system shares the cores among them, and the plan is the total
    work over the cores (or the longest model, if that is longer), times the slowdown this
    sharing was measured to cost (1.4 with five processes on 2 cores).

    Examples
    --------
    >>> round(planned_seconds(FULL, jobs=2) / 60, 1)
    78.5
    >>> planned_seconds(QUICK, jobs=2) < 600
    True
    """
    alone = _ALONE if jobs == 1 else 1.0
    seconds = [alone * _model_seconds(protocol, model) for model in protocol.models]
    if jobs > cores:
        return _OVERSUBSCRIBED * max(sum(seconds) / cores, max(seconds))
    free_at = [0.0] * max(1, jobs)  # when each process is next free
    for model_seconds in seconds:
        first = min(range(len(free_at)), key=free_at.__getitem__)
        free_at[first] += model_seconds
    return max(free_at)


_FIELD_LABELS = {
    "train_size": "training images",
    "val_size": "validation images",
    "hidden": "hidden units",
    "pretrain_epochs": "pre-training epochs",
    "pretrain_lr": "pre-training learning rate",
    "pretrain_batch_size": "pre-training batch size",
    "finetune_epochs": "fine-tuning epochs",
    "finetune_batch_size": "fine-tuning batch size",
    "patience": "early-stopping patience",
    "selection": "grid selection rule",
    "final_epochs": "final fine-tuning epochs",
    "final_lr": "final fine-tuning learning rate",
    "final_dropout": "final fine-tuning dropout on the codes",
    "final_input_dropout": "final fine-tuning dropout on the pixels",
    "probe_size": "linear-probe training images",
    "seed": "seed",
}


def _point_text(model: str, point: GridPoint) -> str:
    knob = _KNOBS[model]
    parts = [] if knob is None else [f"{_KNOB_SYMBOLS[knob]}={point.value:g}"]
    return ", ".join([*parts, f"lr={point.finetune_lr:g}"])


def _value_text(value: object) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


def protocol_differences(protocol: Protocol, reference: Protocol = FULL) -> list[str]:
    """What ``protocol`` changes with respect to ``reference``, one phrase per change.

    Examples
    --------
    >>> protocol_differences(QUICK)[:2]
    ['pre-training epochs 20 -> 4', 'fine-tuning epochs 20 -> 15']
    """
    changes = []
    for name, label in _FIELD_LABELS.items():
        ours, theirs = getattr(protocol, name), getattr(reference, name)
        if ours != theirs:
            changes.append(f"{label} {_value_text(theirs)} -> {_value_text(ours)}")
    left_out = [m for m in reference.models if m not in protocol.grids]
    if left_out:
        changes.append(f"models left out: {', '.join(left_out)}")
    for model in protocol.models:
        ours_grid, theirs_grid = protocol.grids[model], reference.grids.get(model)
        if ours_grid != theirs_grid:
            points = "; ".join(_point_text(model, p) for p in ours_grid)
            size = len(theirs_grid) if theirs_grid else 0
            changes.append(f"{model} grid: {len(ours_grid)} point(s) instead of {size} ({points})")
    return changes


# ---------------------------------------------------------------------------------------------
# The experiment.


class _LastMetrics(Callback):
    """Keeps the last epoch's metrics of a pre-training run."""

    def __init__(self) -> None:
        self.last: EpochMetrics | None = None

    def on_epoch_end(self, trainer: Trainer, metrics: EpochMetrics) -> None:
        self.last = metrics


@dataclass
class _Split:
    X_train: Tensor  # (train_size, 784) in [0, 1]
    y_train: Tensor  # (train_size,)
    X_val: Tensor  # (val_size, 784)
    y_val: Tensor
    X_test: Tensor  # (10000, 784)
    y_test: Tensor


def _load_mnist(data_dir: str | os.PathLike[str] | None, protocol: Protocol) -> _Split:
    from .data import load_dataset

    train = load_dataset("mnist", split="train", data_dir=data_dir)
    test = load_dataset("mnist", split="test", data_dir=data_dir)
    n = train.n_samples
    if protocol.train_size + protocol.val_size > n:
        raise ConfigError(
            f"train_size + val_size must be at most the {n} MNIST training images. Got "
            f"{protocol.train_size} + {protocol.val_size} = "
            f"{protocol.train_size + protocol.val_size} instead."
        )
    # MNIST always has labels.
    assert train.y is not None
    assert test.y is not None
    X, y = torch.from_numpy(train.X), torch.from_numpy(train.y)
    return _Split(
        X_train=X[: protocol.train_size],
        y_train=y[: protocol.train_size],
        X_val=X[n - protocol.val_size :],
        y_val=y[n - protocol.val_size :],
        X_test=torch.from_numpy(test.X),
        y_test=torch.from_numpy(test.y),
    )


def _check_protocol(protocol: Protocol) -> Protocol:
    """``protocol`` checked, with its checked numbers as Python ints and floats."""
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
    # Checked here too, not only by finetune(), so that a bad value fails before the first
    # pre-training rather than an hour into the run.
    checked["final_lr"] = check_real("final_lr", protocol.final_lr, low=0, closed="neither")
    for name in ("final_dropout", "final_input_dropout"):
        checked[name] = check_real(name, getattr(protocol, name), low=0, high=1, closed="left")
    unknown = sorted(set(protocol.grids) - set(MODELS))
    if unknown or not protocol.grids:
        raise ConfigError(
            f"The 'models' parameter must name at least one of {', '.join(MODELS)}. "
            f"Got {', '.join(unknown) or 'none'} instead."
        )
    if any(not grid for grid in protocol.grids.values()):
        raise ConfigError("Every model's grid must hold at least one GridPoint.")
    return dataclasses.replace(protocol, **checked)


def _pretrain_config(protocol: Protocol, model: str, value: float | None, device: str) -> Config:
    knob = _KNOBS[model]
    # contraction defaults to 0.1 in Config: every model but the CAE must switch it off.
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
        seed=protocol.seed,
        device=device,
        contraction=0.0,
    )
    if knob is None:
        return config
    assert value is not None
    return config.replace(**{knob: value})


_RULE_TEXT = {
    "min": "the grid point with the lowest validation error (ties: the earlier point).",
    "one-se": "the one-standard-error rule: among the grid points whose validation error is "
    "within one standard error, sqrt(e(1 - e)/n_val), of the lowest e, the one with the "
    "strongest regularisation (largest lambda, noise level or weight decay; for the AE, the "
    "lowest error).",
}


def _fmt_time(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _finetune_on(
    ae: Autoencoder, data: _Split, protocol: Protocol, device: torch.device, **options: Any
) -> tuple[nn.Sequential, FinetuneResult]:
    """:func:`finetune` on the protocol's training and validation images, batch and seed."""
    return finetune(
        ae,
        data.X_train,
        data.y_train,
        data.X_val,
        data.y_val,
        batch_size=protocol.finetune_batch_size,
        seed=protocol.seed,
        n_classes=10,
        device=device,
        **options,
    )


def _run_model(
    model: str,
    protocol: Protocol,
    data: _Split,
    device: torch.device,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """Pre-train, fine-tune and select over the model's grid; one row of the table."""
    start = time.perf_counter()
    grid = protocol.grids[model]
    knob = _KNOBS[model]
    points: list[dict[str, Any]] = []
    trained: list[tuple[float, nn.Sequential, Autoencoder]] = []  # per point: error, clf, ae
    encoders: dict[float | None, tuple[Autoencoder, dict[str, Any]]] = {}
    for i, point in enumerate(grid):
        tag = f"[{model} {i + 1}/{len(grid)}]"
        if point.value not in encoders:
            t0 = time.perf_counter()
            config = _pretrain_config(protocol, model, point.value, str(device))
            last = _LastMetrics()
            (ae,) = train_stack(data.X_train, [config], callbacks=[last], device=device)
            seconds = time.perf_counter() - t0
            sat = saturation(ae, data.X_val)
            assert sat is not None  # the protocol's codes are sigmoid units
            stats = {
                "pretrain_seconds": round(seconds, 1),
                "final_recon": None if last.last is None else round(last.last.recon, 4),
                "mean_jacobian_norm": mean_jacobian_norm(ae, data.X_val),
                "sat": 100.0 * sat,
            }
            encoders[point.value] = (ae, stats)
            what = "" if knob is None else f" {_KNOB_SYMBOLS[knob]}={point.value:g}"
            log(
                f"{tag} pre-trained{what}: {protocol.pretrain_epochs} epochs in "
                f"{_fmt_time(seconds)} (recon {stats['final_recon']}, mean ||J_f(x)||_F "
                f"{stats['mean_jacobian_norm']:.4g}, SAT {stats['sat']:.1f}%)"
            )
        ae, stats = encoders[point.value]
        classifier, result = _finetune_on(
            ae,
            data,
            protocol,
            device,
            epochs=protocol.finetune_epochs,
            lr=point.finetune_lr,
            patience=protocol.patience,
        )
        log(
            f"{tag} fine-tuned {_point_text(model, point)}: val error "
            f"{100 * result.val_error:.2f}% (best epoch {result.best_epoch}/{result.epochs_run}) "
            f"in {_fmt_time(result.seconds)}"
        )
        entry: dict[str, Any] = {
            "selected_by_validation": False,
            **({} if knob is None else {knob: point.value}),
            "finetune_lr": point.finetune_lr,
            "val_error": round(100 * result.val_error, 2),
            "best_epoch": result.best_epoch,
            "finetune_epochs_run": result.epochs_run,
            "finetune_seconds": round(result.seconds, 1),
            **stats,
        }
        points.append(entry)
        trained.append((result.val_error, classifier, ae))
    index = select_point(
        [error for error, _, _ in trained],
        [point.value for point in grid],
        n_val=int(data.X_val.shape[0]),
        rule=protocol.selection,
    )
    val_error, classifier, ae = trained[index]
    chosen = points[index]
    chosen["selected_by_validation"] = True
    selection_val_error = val_error
    best_epoch = chosen["best_epoch"]
    final: dict[str, Any] | None = None
    if protocol.final_epochs:
        # Again from the pre-trained encoder, not from the grid point's fine-tuned classifier.
        classifier, result = _finetune_on(
            ae,
            data,
            protocol,
            device,
            epochs=protocol.final_epochs,
            lr=protocol.final_lr,
            patience=0,  # dropout makes the validation error noisy: keep the best epoch
            dropout=protocol.final_dropout,
            input_dropout=protocol.final_input_dropout,
        )
        val_error, best_epoch = result.val_error, result.best_epoch
        final = {
            "epochs": protocol.final_epochs,
            "lr": protocol.final_lr,
            "dropout": protocol.final_dropout,
            "input_dropout": protocol.final_input_dropout,
            "val_error": round(100 * val_error, 2),
            "best_epoch": best_epoch,
            "seconds": round(result.seconds, 1),
        }
        log(
            f"[{model}] final fine-tuning of {_point_text(model, grid[index])}: "
            f"{protocol.final_epochs} epochs from lr {protocol.final_lr:g}, dropout "
            f"{protocol.final_dropout:g}/{protocol.final_input_dropout:g}: val error "
            f"{100 * val_error:.2f}% (best epoch {best_epoch}) in {_fmt_time(result.seconds)}"
        )
    err = test_error(classifier, data.X_test, data.y_test)
    probe = linear_probe(
        encode(ae, data.X_train[: protocol.probe_size]),
        data.y_train[: protocol.probe_size],
        encode(ae, data.X_test),
        data.y_test,
        max_iter=_PROBE_ITER,
    )
    paper = PAPER_TABLE1[model]
    selected = {k: chosen[k] for k in ((knob,) if knob else ()) + ("finetune_lr",)}
    row = {
        "model": model,
        "test_error": round(100 * err, 2),
        "val_error": round(100 * val_error, 2),
        "selection_val_error": round(100 * selection_val_error, 2),
        "paper_test_error": paper.test_error,
        "selected": selected,
        "final": final,
        "mean_jacobian_norm": chosen["mean_jacobian_norm"],
        "paper_mean_jacobian_norm": paper.jacobian_norm,
        "sat": round(chosen["sat"], 2),
        "paper_sat": paper.sat,
        "probe_test_error": round(100 * probe.error, 2),
        "best_epoch": best_epoch,
        "wall_seconds": round(time.perf_counter() - start, 1),
        "protocol": protocol.name,
        "selection": protocol.selection,
        "grid": points,
    }
    log(
        f"[{model}] selected {_point_text(model, grid[index])} (val error "
        f"{row['selection_val_error']:.2f}%, tested classifier {row['val_error']:.2f}%): "
        f"test error {row['test_error']:.2f}% (paper "
        f"{paper.test_error:.2f}%), linear probe {row['probe_test_error']:.2f}%, "
        f"{_fmt_time(row['wall_seconds'])}"
    )
    return row


def _environment(device: torch.device, jobs: int) -> dict[str, Any]:
    return {
        "jobs": jobs,
        "threads_per_job": _threads_per_job(jobs),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),  # of the process that starts the jobs
        "device": str(device),
    }


def _sci(x: float) -> str:
    return f"{x:.3g}" if 1e-2 <= abs(x) < 1e4 else f"{x:.2e}"


def _ranking(errors: Mapping[str, float]) -> str:
    """``"CAE < AE = AE+wd"``: models by increasing error, ties shown as such."""
    order = sorted(errors, key=lambda m: errors[m])
    text = order[0]
    for prev, model in itertools.pairwise(order):
        text += (" = " if errors[model] == errors[prev] else " < ") + model
    return text


def _markdown(
    rows: Sequence[dict[str, Any]], meta: dict[str, Any], protocol: Protocol, done: bool
) -> str:
    lines = ["# Table 1 (MNIST): contractive against Rifai et al. (2011)", ""]
    if not done:
        lines += [
            f"**In progress**: {len(rows)} of {len(protocol.models)} models done.",
            "",
        ]
    lines += [
        f"- Protocol: **{protocol.name}**. Command: `{meta['command']}`",
        f"- Total wall time: {_fmt_time(meta['total_seconds'])} "
        f"(planned {_fmt_time(meta['planned_seconds'])} on 2 CPU cores); "
        f"torch {meta['environment']['torch']}, {meta['environment']['jobs']} job(s) of "
        f"{meta['environment']['threads_per_job']} thread(s), device "
        f"{meta['environment']['device']}.",
    ]
    if meta["differences"]:
        lines.append(
            "- Shortened or changed from the full protocol: " + "; ".join(meta["differences"]) + "."
        )
    lines += [
        "",
        "| model | test error % | paper | val error % | selected | mean ‖J_f(x)‖_F | paper "
        "| SAT % | paper | probe test error % | wall time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    by_model = {row["model"]: row for row in rows}
    for model, paper in PAPER_TABLE1.items():
        row = by_model.get(model)
        ref = (
            f"{paper.test_error:.2f}",
            f"{paper.jacobian_norm:.2e}",
            f"{paper.sat:.2f}",
        )
        if row is None:
            why = "not reproduced" if model not in MODELS else "not run"
            lines.append(f"| {model} | {why} | {ref[0]} | | | | {ref[1]} | | {ref[2]} | | |")
            continue
        selected = ", ".join(
            f"{_KNOB_SYMBOLS.get(k, k) if k != 'finetune_lr' else 'lr'}={v:g}"
            for k, v in row["selected"].items()
        )
        lines.append(
            f"| {model} | **{row['test_error']:.2f}** | {ref[0]} | {row['val_error']:.2f} | "
            f"{selected} | {_sci(row['mean_jacobian_norm'])} | {ref[1]} | {row['sat']:.2f} | "
            f"{ref[2]} | {row['probe_test_error']:.2f} | {_fmt_time(row['wall_seconds'])} |"
        )
    if rows:
        ours = _ranking({r["model"]: r["test_error"] for r in rows})
        theirs = _ranking({m: PAPER_TABLE1[m].test_error for m in by_model})
        lines += ["", f"Ranking by test error: ours {ours}; the paper's (same models) {theirs}."]
    lines += ["", "## Definitions", ""]
    lines += [f"- **{key}**: {text}" for key, text in _DEFINITIONS.items()]
    lines += [
        "",
        "## Settings",
        "",
        f"- Data: MNIST; training set the first {protocol.train_size} training images, "
        f"validation set the last {protocol.val_size}, test set the {meta['n_test']} test "
        "images; pixels divided by 255.",
        f"- Pre-training: {meta['n_features']}-{protocol.hidden} sigmoid, tied weights, "
        f"cross-entropy, Adam lr {protocol.pretrain_lr:g}, batch "
        f"{protocol.pretrain_batch_size}, epochs {protocol.pretrain_epochs}, seed "
        f"{protocol.seed}.",
        f"- Fine-tuning: the encoder's weights and biases initialise the hidden layer, a new "
        f"zero-initialised softmax layer on top; SGD momentum 0.9, batch "
        f"{protocol.finetune_batch_size}, initial lr as selected, cosine decay over "
        f"{protocol.finetune_epochs} epochs, "
        f"patience {protocol.patience or 'off'}; the best-validation epoch's weights are kept.",
        f"- Selection: {_RULE_TEXT[protocol.selection]}",
        (
            f"- Final fine-tuning of the selected point: from the pre-trained encoder again, "
            f"{protocol.final_epochs} epochs, SGD momentum 0.9, batch "
            f"{protocol.finetune_batch_size}, lr {protocol.final_lr:g} with cosine decay, dropout "
            f"{protocol.final_dropout:g} on the codes and {protocol.final_input_dropout:g} on the "
            "pixels, the best-validation epoch's weights kept; this classifier is tested."
            if protocol.final_epochs
            else "- Final fine-tuning: none; the selected grid point's classifier is tested."
        ),
        "",
        "## Grid (validation error % after fine-tuning; * = selected)",
        "",
        "| model | point | val error % | best epoch | mean ‖J_f(x)‖_F | SAT % "
        "| pre-train s | fine-tune s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for entry in row["grid"]:
            knob = _KNOBS[row["model"]]
            point = GridPoint(entry.get(knob) if knob else None, entry["finetune_lr"])
            mark = "*" if entry["selected_by_validation"] else ""
            lines.append(
                f"| {row['model']} | {_point_text(row['model'], point)}{mark} | "
                f"{entry['val_error']:.2f} | {entry['best_epoch']} | "
                f"{_sci(entry['mean_jacobian_norm'])} | {entry['sat']:.2f} | "
                f"{entry['pretrain_seconds']} | {entry['finetune_seconds']} |"
            )
    return "\n".join(lines) + "\n"


def _write_outputs(
    out: Path,
    rows: Sequence[dict[str, Any]],
    meta: dict[str, Any],
    protocol: Protocol,
    *,
    done: bool,
) -> None:
    from .runs import atomic_write_bytes

    meta = {**meta, "complete": done, "models_done": [r["model"] for r in rows]}
    atomic_write_bytes(out / "table1.json", (json.dumps(list(rows), indent=2) + "\n").encode())
    atomic_write_bytes(out / "table1_run.json", (json.dumps(meta, indent=2) + "\n").encode())
    atomic_write_bytes(out / "table1.md", _markdown(rows, meta, protocol, done).encode())


def _protocol_json(protocol: Protocol) -> dict[str, Any]:
    out = {f.name: getattr(protocol, f.name) for f in dataclasses.fields(protocol)}
    out["grids"] = {
        model: [dataclasses.asdict(p) for p in grid] for model, grid in protocol.grids.items()
    }
    return out


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_table1(
    out: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    protocol: Protocol = FULL,
    device: str = "auto",
    jobs: int | None = None,
    command: str | None = None,
    log: Callable[[str], None] = _stderr,
) -> list[dict[str, Any]]:
    """Run the Table 1 experiment and write ``out/table1.md``, ``table1.json``, ``table1_run.json``.

    Parameters
    ----------
    out : path-like
        Output folder (created if missing); the three files are rewritten after every model.
    data_dir : path-like, optional
        Folder of the four MNIST ``.gz`` files (else ``CONTRACTIVE_DATA_DIR``, the cache, or a
        download; see :func:`contractive.data.load_dataset`).
    protocol : Protocol
        :data:`FULL`, :data:`QUICK`, or a :func:`dataclasses.replace` of one.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
    jobs : int, optional
        Models trained at once, each in a process of its own that gets an equal share of this
        process's torch threads (at least one). By default one job per torch thread on the
        CPU (two on a 2-core machine, one with ``torch.set_num_threads(1)``) and one on a GPU.
        The rows do not depend on ``jobs`` as long as each model runs with the same number of
        threads: every model has its own seeds.
    command : str, optional
        The command line, recorded in the outputs.
    log : callable
        Receives one progress line per pre-trained and per fine-tuned model (stderr by
        default).

    Returns
    -------
    list of dict
        One row per model, as in ``table1.json``: ``model``, ``test_error`` (%), ``val_error``
        (%), ``selected``, ``mean_jacobian_norm``, ``sat`` (%), ``probe_test_error`` (%), the
        paper's figures (``paper_*``), ``wall_seconds`` and the whole ``grid``.

    Raises
    ------
    ConfigError
        The protocol is invalid or asks for more images than MNIST has.
    DataError
        The MNIST files are missing or damaged.
    """
    protocol = _check_protocol(protocol)
    if jobs is not None:
        jobs = check_int("jobs", jobs, low=1)
    dev = resolve_device(device)
    if jobs is None:
        jobs = torch.get_num_threads() if dev.type == "cpu" else 1
    jobs = min(jobs, len(protocol.models))
    out_dir = check_output_dir(out)
    # One writer per output folder: a second run into it is refused, not interleaved.
    with RunLock(out_dir):
        start = time.perf_counter()
        data = _load_mnist(data_dir, protocol)
        differences = protocol_differences(protocol)
        planned = planned_seconds(protocol, jobs=jobs)
        meta: dict[str, Any] = {
            "experiment": "table1",
            "protocol": _protocol_json(protocol),
            "differences": differences,
            "command": command or "contractive reproduce table1",
            "planned_seconds": round(planned, 1),
            "n_features": int(data.X_train.shape[1]),
            "n_test": int(data.X_test.shape[0]),
            "total_seconds": 0.0,
            "environment": _environment(dev, jobs),
            "definitions": _DEFINITIONS,
        }
        n_pre = sum(len({p.value for p in g}) for g in protocol.grids.values())
        n_fine = sum(len(g) for g in protocol.grids.values())
        log(
            f"table1 ({protocol.name}): {', '.join(protocol.models)}; {n_pre} pre-trainings x "
            f"{protocol.pretrain_epochs} epochs and {n_fine} fine-tunings x <= "
            f"{protocol.finetune_epochs} epochs"
            + (
                f", then {len(protocol.models)} final fine-tunings x {protocol.final_epochs} epochs"
                if protocol.final_epochs
                else ""
            )
            + f" on {protocol.train_size} images; {jobs} job(s); planned about "
            f"{_fmt_time(planned)} on 2 CPU cores; device {dev}"
        )
        if differences:
            log(f"table1 ({protocol.name}) shortens the full protocol: {'; '.join(differences)}")
        rows: list[dict[str, Any]] = []
        if jobs == 1:
            finished: Iterator[dict[str, Any]] = (
                _run_model(model, protocol, data, dev, log) for model in protocol.models
            )
        else:
            finished = _run_models_in_processes(protocol, data, dev, log, jobs)
        for row in finished:
            rows.append(row)
            rows.sort(key=lambda r: MODELS.index(r["model"]))  # table order, whoever finished first
            meta["total_seconds"] = round(time.perf_counter() - start, 1)
            _write_outputs(out_dir, rows, meta, protocol, done=len(rows) == len(protocol.models))
        log(f"table1 ({protocol.name}) done in {_fmt_time(meta['total_seconds'])}")
        return rows


# ---------------------------------------------------------------------------------------------
# Several models at once: one process per model.

# Set in each worker process by _init_worker: the data and where progress lines go.
_WORKER: dict[str, Any] = {}


def _threads_per_job(jobs: int) -> int:
    return max(1, torch.get_num_threads() // jobs)


def _init_worker(data: _Split, threads: int, lines: Any) -> None:
    torch.set_num_threads(threads)
    _WORKER.update(data=data, lines=lines)


def _model_job(model: str, protocol: Protocol, device: str) -> dict[str, Any]:
    return _run_model(model, protocol, _WORKER["data"], torch.device(device), _WORKER["lines"].put)


def _run_models_in_processes(
    protocol: Protocol,
    data: _Split,
    device: torch.device,
    log: Callable[[str], None],
    jobs: int,
) -> Iterator[dict[str, Any]]:
    """Run ``_run_model`` for every model in ``jobs`` processes; yield the rows as they finish.

    The processes are spawned, not forked (a forked copy of a process that has started
    torch's thread pool can deadlock), and get the already loaded data from this one. Their
    progress lines travel back through a SimpleQueue, whose ``put`` writes to the pipe before
    it returns, so a model's lines are all readable here by the time its row is.
    """
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    lines = context.SimpleQueue()

    def forward() -> None:
        while not lines.empty():
            log(lines.get())

    pool = ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=context,
        initializer=_init_worker,
        initargs=(data, _threads_per_job(jobs), lines),
    )
    try:
        pending: set[Future[dict[str, Any]]] = {
            pool.submit(_model_job, model, protocol, str(device)) for model in protocol.models
        }
        while pending:
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            forward()
            for future in done:
                yield future.result()  # a worker's exception is raised here
    finally:
        # On an error or Ctrl-C the models not yet started are dropped; running ones are
        # waited for (Ctrl-C reaches them too, so they stop at once).
        pool.shutdown(wait=True, cancel_futures=True)
        forward()


# ---------------------------------------------------------------------------------------------
# Command line.


def _model_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {','.join(MODELS)}, got {text!r}"
        )
    return names


# Command-line flags that change the protocol, and the Protocol field each sets.
_OVERRIDES = {
    "train_size": "the first N training images train (default 50000)",
    "val_size": "the last N training images validate (default 10000)",
    "hidden": "hidden units (default 1000)",
    "pretrain_epochs": "pre-training epochs (default: full 20, quick 4)",
    "finetune_epochs": "fine-tuning epochs of each grid point (default: full 20, quick 15)",
    "probe_size": "training images of the linear probe (default: full 10000, quick 5000)",
}


# The same for the final fine-tuning, whose values can be 0: flag, type, metavar, help.
_FINAL_OVERRIDES: dict[str, tuple[Callable[[str], Any], str, str]] = {
    "final_epochs": (
        non_negative_int,
        "N",
        f"epochs of the final fine-tuning, 0 to test the selected grid point's own classifier "
        f"(default: full {FULL.final_epochs}, quick {QUICK.final_epochs})",
    ),
    "final_lr": (
        positive_float,
        "LR",
        f"initial learning rate of the final fine-tuning (default {FULL.final_lr:g})",
    ),
    "final_dropout": (
        probability,
        "P",
        f"dropout on the codes in the final fine-tuning (default {FULL.final_dropout:g})",
    ),
    "final_input_dropout": (
        probability,
        "P",
        f"dropout on the pixels in the final fine-tuning (default {FULL.final_input_dropout:g})",
    ),
}


def add_reproduce_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``contractive reproduce`` to its subcommand parser.

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_reproduce_arguments(p)
    >>> args = p.parse_args(["table1", "--out", "results", "--quick"])
    >>> args.experiment, args.quick, args.models
    ('table1', True, None)
    """
    parser.description = (
        "Reproduce Table 1 of Rifai et al. (2011) on MNIST: pre-train CAE, DAE-g, DAE-b, AE+wd "
        "and AE, fine-tune each as an MLP, select by validation error, report test error."
    )
    parser.add_argument("experiment", choices=EXPERIMENTS, help="which experiment")
    parser.add_argument("--data-dir", metavar="DIR", help="folder holding the four MNIST .gz files")
    parser.add_argument("--out", required=True, metavar="OUT", help="folder for the results")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="under 10 minutes on 2 CPU cores: fewer epochs, one grid point per model",
    )
    parser.add_argument(
        "--models",
        type=_model_list,
        metavar="M[,M...]",
        help=f"only these models (default: all of {','.join(MODELS)})",
    )
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default 0)")
    parser.add_argument(
        "--threads",
        type=positive_int,
        metavar="N",
        help="torch intra-op threads (default: torch's choice; 1 is faster on a busy machine)",
    )
    parser.add_argument(
        "--selection",
        choices=SELECTION_RULES,
        help="how each model's grid point is chosen from the validation errors: min, or "
        "one-se, the most regularised point within one standard error of the lowest "
        "(default: one-se)",
    )
    parser.add_argument(
        "--jobs",
        type=positive_int,
        metavar="N",
        help="models trained at once, one process each, sharing the torch threads (default: "
        "one per thread on the CPU, so 2 on 2 cores and 1 with --threads 1; 1 on a GPU); "
        "the results do not depend on it",
    )
    changes = parser.add_argument_group(
        "changing the protocol (the result is then not the paper's protocol)"
    )
    for name, help_text in _OVERRIDES.items():
        changes.add_argument(
            "--" + name.replace("_", "-"), type=positive_int, metavar="N", help=help_text
        )
    for name, (kind, metavar, help_text) in _FINAL_OVERRIDES.items():
        changes.add_argument(
            "--" + name.replace("_", "-"), type=kind, metavar=metavar, help=help_text
        )


def _protocol_from_args(args: argparse.Namespace) -> Protocol:
    protocol = QUICK if args.quick else FULL
    changes: dict[str, Any] = {
        name: getattr(args, name) for name in _OVERRIDES if getattr(args, name, None)
    }
    for name in _FINAL_OVERRIDES:
        value = getattr(args, name, None)
        if value is not None and value != getattr(protocol, name):
            changes[name] = value
    if args.seed != protocol.seed:
        changes["seed"] = check_int("seed", args.seed, low=0)
    if args.selection and args.selection != protocol.selection:
        changes["selection"] = args.selection
    if args.models:
        changes["grids"] = {m: g for m, g in protocol.grids.items() if m in args.models}
    if not changes:
        return protocol
    return dataclasses.replace(protocol, name=f"{protocol.name} (changed)", **changes)


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Run ``contractive reproduce EXPERIMENT`` from parsed arguments; returns the exit status.

    Progress goes to stderr; the finished table (``OUT/table1.md``) is printed to stdout.
    """
    protocol = _protocol_from_args(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = " ".join(["contractive reproduce", args.experiment, *_rebuild_flags(args)])
    run_table1(
        args.out,
        data_dir=args.data_dir,
        protocol=protocol,
        device=args.device,
        jobs=args.jobs,
        command=command,
    )
    table = (Path(args.out) / "table1.md").read_text()
    print(table, end="")
    print(f"Wrote {Path(args.out) / 'table1.md'} and {Path(args.out) / 'table1.json'}")
    return 0


def _rebuild_flags(args: argparse.Namespace) -> list[str]:
    """The flags of ``args`` as a command line, for the record in the outputs."""
    flags: list[str] = []
    if args.data_dir:
        flags += ["--data-dir", shlex.quote(str(args.data_dir))]
    flags += ["--out", shlex.quote(str(args.out))]
    if args.quick:
        flags.append("--quick")
    if args.models:
        flags += ["--models", ",".join(args.models)]
    if args.device != "auto":
        flags += ["--device", args.device]
    if args.seed:
        flags += ["--seed", str(args.seed)]
    if args.threads:
        flags += ["--threads", str(args.threads)]
    if args.selection:
        flags += ["--selection", args.selection]
    if args.jobs:
        flags += ["--jobs", str(args.jobs)]
    for name in _OVERRIDES:
        value = getattr(args, name, None)
        if value:
            flags += ["--" + name.replace("_", "-"), str(value)]
    for name in _FINAL_OVERRIDES:
        value = getattr(args, name, None)
        if value is not None:
            flags += ["--" + name.replace("_", "-"), f"{value:g}"]
    return flags
