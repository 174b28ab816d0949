"""Table 2 of Rifai et al. (2011), declared: deep and shallow models on the MNIST variations.

The paper compares, on seven datasets of Larochelle et al. (2007) (10000 training, 2000
validation and 50000 test images each; rectangles 1000 / 200 / 50000), an SVM with an RBF
kernel, three-layer stacks of autoencoders (SAE-3) and of masking-noise denoising
autoencoders (DAE-b-3), and one- and two-layer CAEs (CAE-1, CAE-2). Every stack is trained
greedily (layer ``k + 1`` on the codes of layer ``k``, :func:`contractive.stacking.train_stack`)
and then fine-tuned as a whole as an MLP; hyper-parameters are chosen on the validation set.

Here a *family* is what one pre-training makes: the CAE family trains two CAE layers at one
lambda and gives both CAE-1 (its first layer) and CAE-2 (both), so the two share their first
layer as in the greedy procedure. The DAE-b family trains three masking-noise layers, the SAE
family three plain ones. :mod:`contractive.experiments.table2_runner` runs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import Config
from .protocol import GridPoint, Protocol, autoencoder_config, grid, protocol_differences

__all__ = [
    "DATASETS",
    "FAMILIES",
    "FULL",
    "MODELS",
    "PAPER_TABLE2",
    "QUICK",
    "QUICK_SVM_GRID",
    "SVM_GRID",
    "Family",
    "differences",
    "layer_configs",
    "point_text",
]

#: The datasets of Table 2, in the paper's order (names of :data:`contractive.data.DATASETS`).
DATASETS = (
    "mnist-basic",
    "mnist-rot",
    "mnist-bg-rand",
    "mnist-bg-img",
    "mnist-rot-bg-img",
    "rectangles",
    "rectangles-img",
)

#: ``--quick``'s datasets when none are named: the plain and the rotated digits.
QUICK_DATASETS = ("mnist-basic", "mnist-rot")

#: The models we train, in the paper's column order (its RBM-3 is not reproduced).
MODELS = ("SVM-rbf", "SAE-3", "DAE-b-3", "CAE-1", "CAE-2")


@dataclass(frozen=True)
class Family:
    """Autoencoder layers pre-trained together, and the models fine-tuned from them.

    Attributes
    ----------
    knob : str or None
        The :class:`~contractive.config.Config` field the grid varies (None: no knob).
    symbol : str
        How the knob is written in the outputs.
    models : dict of str to int
        Each model made from the family, with how many of its layers (bottom first) it uses.

    Examples
    --------
    >>> FAMILIES["CAE"].depth
    2
    """

    knob: str | None
    symbol: str
    models: dict[str, int]

    @property
    def depth(self) -> int:
        """Layers pre-trained: the most any of the family's models uses."""
        return max(self.models.values())


#: The families, by the name of their grid in the protocol.
FAMILIES: dict[str, Family] = {
    "SAE": Family(None, "", {"SAE-3": 3}),
    "DAE-b": Family("mask_prob", "p", {"DAE-b-3": 3}),
    "CAE": Family("contraction", "lambda", {"CAE-1": 1, "CAE-2": 2}),
}

#: Rifai et al. (2011), Table 2, test error % (confirmed in the paper; see /shared/PAPER.md),
#: by dataset, then model; RBM-3 is shown but not reproduced.
PAPER_TABLE2: dict[str, dict[str, float]] = {
    name: dict(zip(("SVM-rbf", "SAE-3", "RBM-3", "DAE-b-3", "CAE-1", "CAE-2"), row, strict=True))
    for name, row in {
        "mnist-basic": (3.03, 3.46, 3.11, 2.84, 2.83, 2.48),
        "mnist-rot": (11.11, 10.30, 10.30, 9.53, 11.59, 9.66),
        "mnist-bg-rand": (14.58, 11.28, 6.73, 10.30, 13.57, 10.90),
        "mnist-bg-img": (22.61, 23.00, 16.31, 16.68, 16.70, 15.50),
        "mnist-rot-bg-img": (55.18, 51.93, 47.39, 43.76, 48.10, 45.23),
        "rectangles": (2.15, 2.41, 2.60, 1.99, 1.48, 1.21),
        "rectangles-img": (24.04, 24.05, 22.50, 21.59, 21.86, 21.54),
    }.items()
}

#: The SVM's grid: C, and gamma as a multiple of scikit-learn's ``"scale"``,
#: ``1 / (n_features * X.var())``.
SVM_GRID: tuple[tuple[float, float], ...] = tuple(
    (c, g) for c in (1.0, 10.0, 100.0) for g in (0.5, 1.0, 2.0)
)
#: ``--quick``'s SVM: one point.
QUICK_SVM_GRID: tuple[tuple[float, float], ...] = ((10.0, 1.0),)

#: The full protocol: three values a family (the SAE has none), 20 epochs a layer, and each
#: stack fine-tuned for up to 30 epochs with early stopping.
FULL = Protocol(
    name="full",
    train_size=10_000,  # each dataset's own training set, whole (rectangles: 1000)
    val_size=2_000,
    hidden=1000,
    pretrain_epochs=20,
    pretrain_lr=1e-3,
    pretrain_batch_size=128,
    finetune_epochs=30,
    finetune_batch_size=64,
    patience=10,
    probe_size=1,  # no linear probe in Table 2
    selection="one-se",
    grids={
        "SAE": grid((None,), (0.1,)),
        "DAE-b": grid((0.1, 0.25, 0.5), (0.1,)),
        "CAE": grid((0.3, 1.0, 3.0), (0.1,)),
    },
)

#: ``--quick``: one value a family, fewer epochs, the first 10000 test images (an RBF SVM's
#: prediction on all 50000 alone takes minutes).
QUICK = dataclasses.replace(
    FULL,
    name="quick",
    pretrain_epochs=3,
    finetune_epochs=10,
    patience=0,
    test_size=10_000,
    grids={
        "SAE": grid((None,), (0.1,)),
        "DAE-b": grid((0.25,), (0.1,)),
        "CAE": grid((1.0,), (0.1,)),
    },
)


def point_text(family: str, point: GridPoint) -> str:
    """A family's grid point as the outputs write it: ``lambda=1, lr=0.1``.

    Examples
    --------
    >>> point_text("CAE", GridPoint(1.0, 0.1)), point_text("SAE", GridPoint(None, 0.1))
    ('lambda=1, lr=0.1', 'lr=0.1')
    """
    knob = FAMILIES[family].symbol
    lr = f"lr={point.finetune_lr:g}"
    return lr if point.value is None else f"{knob}={point.value:g}, {lr}"


def layer_configs(
    protocol: Protocol, family: str, value: float | None, device: str
) -> list[Config]:
    """The Configs of ``family``'s layers at grid value ``value``, bottom first.

    Every layer has ``protocol.hidden`` sigmoid units, tied weights and cross-entropy (the
    codes below it are in [0, 1]), and the same regularisation; each has its own seed.

    Examples
    --------
    >>> [c.contraction for c in layer_configs(QUICK, "CAE", 1.0, "cpu")]
    [1.0, 1.0]
    >>> [c.mask_prob for c in layer_configs(QUICK, "DAE-b", 0.25, "cpu")]
    [0.25, 0.25, 0.25]
    """
    knob = FAMILIES[family].knob
    return [
        autoencoder_config(protocol, knob, value, device, seed=protocol.seed + k)
        for k in range(FAMILIES[family].depth)
    ]


def differences(protocol: Protocol) -> list[str]:
    """What ``protocol`` changes from the full Table 2 protocol, one phrase per change.

    Examples
    --------
    >>> differences(QUICK)[:2]
    ['pre-training epochs 20 -> 3', 'fine-tuning epochs 30 -> 10']
    """
    return protocol_differences(protocol, FULL, point_text)
