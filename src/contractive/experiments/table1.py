"""Table 1 of Rifai et al. (2011) on MNIST, declared: its models, grids, figures and costs.

The protocol (paper, section "Evaluation protocol"):

1. Pre-train one hidden layer of 1000 sigmoid units with tied weights and cross-entropy
   reconstruction, as each of five models: CAE (``contraction`` lambda), DAE-g (Gaussian input
   noise ``noise_std``), DAE-b (masking noise ``mask_prob``), AE + weight decay
   (``weight_decay``) and a plain AE, on the first 50000 MNIST training images.
2. Measure, on the validation set (the last 10000 training images) and before fine-tuning,
   the mean ``||J_f(x)||_F`` and SAT.
3. Fine-tune an MLP initialised from the encoder (:func:`contractive.evaluate.finetune`) with
   early stopping on the validation error.
4. For each model, select a grid point on the validation errors (:func:`select_point`),
   fine-tune its encoder once more with dropout, and report the test error on the 10000 test
   images.

Everything here is data or a small function of it; :mod:`contractive.experiments.runner`
runs it and :mod:`contractive.experiments.render` writes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import Config
from .protocol import GridPoint, Protocol, autoencoder_config, grid, protocol_differences

__all__ = [
    "DEFINITIONS",
    "FULL",
    "KNOBS",
    "KNOB_SYMBOLS",
    "MODELS",
    "PAPER_TABLE1",
    "PAPER_TABLE1_CIFAR_BW",
    "QUICK",
    "RULE_TEXT",
    "PaperRow",
    "differences",
    "paper_rows",
    "planned_seconds",
    "point_text",
    "pretrain_config",
]

#: The models of Table 1 that we train, in the paper's order (the RBM is not reproduced).
MODELS = ("CAE", "DAE-g", "DAE-b", "AE+wd", "AE")


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's Table 1: test error %, mean ||J_f(x)||_F, SAT %.

    Examples
    --------
    >>> PAPER_TABLE1["CAE"].test_error
    1.14
    """

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

#: Rifai et al. (2011), Table 1, CIFAR-bw (confirmed in the paper; it has no RBM row there).
PAPER_TABLE1_CIFAR_BW: dict[str, PaperRow] = {
    "CAE": PaperRow(47.86, 2.40e-5, 85.65),
    "DAE-b": PaperRow(49.03, 4.85e-5, 80.66),
    "DAE-g": PaperRow(54.81, 4.94e-5, 19.90),
    "AE+wd": PaperRow(55.03, 34.9e-5, 23.04),
    "AE": PaperRow(55.47, 44.9e-5, 22.57),
}


def paper_rows(dataset: str) -> dict[str, PaperRow]:
    """The paper's Table 1 rows for ``dataset``, by model; empty where the paper has none.

    Examples
    --------
    >>> paper_rows("mnist")["CAE"].test_error, paper_rows("cifar-bw")["CAE"].test_error
    (1.14, 47.86)
    >>> paper_rows("mnist-rot")
    {}
    """
    return {"mnist": PAPER_TABLE1, "cifar-bw": PAPER_TABLE1_CIFAR_BW}.get(dataset, {})


#: The Config field each model's grid varies (the AE has none: its grid is the learning rate).
KNOBS: dict[str, str | None] = {
    "CAE": "contraction",
    "DAE-g": "noise_std",
    "DAE-b": "mask_prob",
    "AE+wd": "weight_decay",
    "AE": None,
}
#: How a knob is written in the outputs.
KNOB_SYMBOLS = {
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
PROBE_ITER = 100


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
        "CAE": grid((0.3, 1.0, 3.0), (0.1,)),
        "DAE-g": grid((0.1, 0.25, 0.5), (0.1,)),
        "DAE-b": grid((0.1, 0.25, 0.5), (0.1,)),
        "AE+wd": grid((1e-4, 1e-3, 1e-2), (0.1,)),
        # No regularisation knob, and one encoder for every point: with a final fine-tuning
        # (at its own lr, for every model) there is nothing for an AE grid to choose.
        "AE": grid((None,), (0.1,)),
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
        "CAE": grid((1.0,), (0.1,)),
        "DAE-g": grid((0.25,), (0.1,)),
        "DAE-b": grid((0.25,), (0.1,)),
        "AE+wd": grid((1e-3,), (0.1,)),
        "AE": grid((None,), (0.1,)),
    },
)

DEFINITIONS = {
    "test_error": "% of the test images (all of them; MNIST: 10000) misclassified by the tested "
    "classifier: the selected grid point's encoder after the final fine-tuning (or the grid "
    "point's own classifier when the protocol has none).",
    "val_error": "% of the validation images (MNIST: the last training images; never trained on) "
    "misclassified by the tested classifier: after the final fine-tuning when the protocol "
    "has one, else the selected grid point's.",
    "selection_val_error": "the selected grid point's validation error %, after the grid's "
    "fine-tuning (see Selection under Settings for the rule).",
    "mean_jacobian_norm": "mean over the validation images of ||J_f(x)||_F, the Frobenius norm "
    "of the encoder's (hidden x d_x) Jacobian at x, pixels in [0, 1], before fine-tuning; per "
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


RULE_TEXT = {
    "min": "the grid point with the lowest validation error (ties: the earlier point).",
    "one-se": "the one-standard-error rule: among the grid points whose validation error is "
    "within one standard error, sqrt(e(1 - e)/n_val), of the lowest e, the one with the "
    "strongest regularisation (largest lambda, noise level or weight decay; for the AE, the "
    "lowest error).",
}


def point_text(model: str, point: GridPoint) -> str:
    """A grid point as the outputs write it: ``lambda=1, lr=0.1``.

    Examples
    --------
    >>> point_text("CAE", GridPoint(1.0, 0.1))
    'lambda=1, lr=0.1'
    """
    knob = KNOBS[model]
    parts = [] if knob is None else [f"{KNOB_SYMBOLS[knob]}={point.value:g}"]
    return ", ".join([*parts, f"lr={point.finetune_lr:g}"])


def pretrain_config(protocol: Protocol, model: str, value: float | None, device: str) -> Config:
    """The Config that pre-trains ``model`` at its grid value ``value``.

    Examples
    --------
    >>> pretrain_config(QUICK, "DAE-b", 0.25, "cpu").mask_prob
    0.25
    """
    return autoencoder_config(protocol, KNOBS[model], value, device, seed=protocol.seed)


def differences(protocol: Protocol) -> list[str]:
    """What ``protocol`` changes from the full Table 1 protocol, one phrase per change.

    Examples
    --------
    >>> differences(QUICK)[:2]
    ['pre-training epochs 20 -> 4', 'fine-tuning epochs 20 -> 15']
    """
    return protocol_differences(protocol, FULL, point_text)


def _task_seconds(
    protocol: Protocol, n_train: int, n_features: int
) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """Planned seconds of every grid-value task (in the runner's order) and of each model's
    finishing task (the final fine-tuning and the probe)."""
    # The costs are matrix products of (batch, d_x) by (d_x, hidden): linear in each.
    scale = n_train * n_features * protocol.hidden / (50_000 * 784 * 1000)
    values = []
    for model in protocol.models:
        grid = protocol.grids[model]
        for value in protocol.values(model):
            n_points = sum(1 for p in grid if p.value == value)
            values.append(
                (
                    model,
                    protocol.pretrain_epochs * _PRETRAIN_EPOCH_S * scale
                    + n_points * protocol.finetune_epochs * _FINETUNE_EPOCH_S * scale,
                )
            )
    finish = {
        model: protocol.final_epochs * _FINAL_EPOCH_S * scale
        + _PROBE_S * protocol.probe_size / 10_000
        for model in protocol.models
    }
    return values, finish


def planned_seconds(
    protocol: Protocol,
    *,
    jobs: int = 1,
    cores: int = 2,
    n_train: int | None = None,
    n_features: int = 784,
) -> float:
    """Wall time the protocol is planned to take on ``cores`` CPU cores, in seconds.

    Counts each distinct pre-training once, every fine-tuning of the grid at its full
    ``finetune_epochs`` (early stopping only makes it shorter) and the final fine-tuning.
    Per-epoch costs were measured on 50000 images with 1000 hidden units, one torch thread
    per process, and scale with ``n_train * n_features * hidden`` (``n_train`` defaults to
    ``train_size``; a smaller dataset gives fewer images). With ``jobs`` processes the plan
    replays the runner's schedule: grid values are handed out in table order to whichever
    process is free first, and a model whose values are all done has its final fine-tuning
    handed out before any further value; the plan is the time the last task ends. With more
    processes than ``cores``, the operating system shares the cores among them, and the plan
    is the total work over the cores (or the longest model, if that is longer), times the
    slowdown this sharing was measured to cost (1.4 with five processes on 2 cores).

    Examples
    --------
    >>> round(planned_seconds(FULL, jobs=2) / 60, 1)
    73.3
    >>> planned_seconds(QUICK, jobs=2) < 600
    True
    """
    n = protocol.train_size if n_train is None else n_train
    values, finish = _task_seconds(protocol, n, n_features)
    if jobs == 1:
        return _ALONE * (sum(cost for _, cost in values) + sum(finish.values()))
    if jobs > cores:
        per_model = {m: finish[m] + sum(c for v, c in values if v == m) for m in finish}
        return _OVERSUBSCRIBED * max(sum(per_model.values()) / cores, max(per_model.values()))
    free_at = [0.0] * jobs  # when each process is next free
    left = {m: sum(1 for v, _ in values if v == m) for m in finish}
    ends: dict[str, float] = dict.fromkeys(finish, 0.0)  # when a model's last value ends
    ready: list[tuple[float, str]] = []  # (ready at, model) of finishing tasks not yet run
    queue = list(values)
    while queue or ready:
        worker = min(range(jobs), key=free_at.__getitem__)
        now = free_at[worker]
        due = [r for r in ready if r[0] <= now]
        if due:
            ready.remove(due[0])
            free_at[worker] = now + finish[due[0][1]]
        elif queue:
            model, cost = queue.pop(0)
            free_at[worker] = now + cost
            ends[model] = max(ends[model], free_at[worker])
            left[model] -= 1
            if left[model] == 0:
                ready.append((ends[model], model))
        else:  # idle until the next model is ready to finish
            free_at[worker] = min(at for at, _ in ready)
    return max(free_at)
