"""The Manifold Tangent Classifier experiment (Rifai et al., NIPS 2011), declared.

The MTC trains a stack of CAE+H layers without labels, takes at every training image the
``k`` leading right singular vectors of the top layer's Jacobian (the tangents of the data
manifold there, :func:`contractive.tangents.tangent_bases`), and fine-tunes the stack as a
classifier whose output must not move along them (tangent propagation,
:func:`contractive.tangent_prop.tangent_propagation_penalty`). Here every stack is fine-tuned
twice, with and without tangent propagation, so that the difference between the two rows is
the classifier's own; the semi-supervised rows fine-tune on a few labelled images while the
stack was pre-trained on all of them. :mod:`contractive.experiments.mtc_runner` runs it.

Examples
--------
>>> QUICK.depths, FULL.depths
((1,), (1, 2))
>>> [round(KINGMA_MTC[n], 2) for n in (100, 1000)]
[12.03, 3.64]
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ..config import Config
from ..exceptions import ConfigError
from ..validation import check_choice, check_int, check_real
from .protocol import Protocol, autoencoder_config

__all__ = [
    "FULL",
    "KINGMA_MTC",
    "PAPER_MTC",
    "QUICK",
    "MTCProtocol",
    "check_mtc_protocol",
    "epochs_for",
    "layer_config",
    "split_protocol",
]

#: The MTC's test error (%) on MNIST with all labels, as the MTC paper is widely cited (the
#: paper's table was not read here).
PAPER_MTC = 0.81

#: Test error (%) of the MTC with 100 / 600 / 1000 / 3000 labels, as Kingma et al. (2014,
#: Table 1) cite it; not confirmed against the MTC paper here.
KINGMA_MTC = {100: 12.03, 600: 5.13, 1000: 3.64, 3000: 2.57}


@dataclass(frozen=True)
class MTCProtocol:
    """Sizes, epochs and grids of one run of the MTC experiment.

    Attributes
    ----------
    name : str
        ``"full"``, ``"quick"``, or either with ``" (changed)"``.
    train_size, val_size : int
        The first ``train_size`` training images pre-train the stack and train the
        classifier; the last ``val_size`` validate (early stopping, the grid).
    hidden : tuple of int
        Units of each CAE+H layer, bottom first.
    depths : tuple of int
        The stacks fine-tuned: their numbers of layers (at most ``len(hidden)``).
    contraction, higher_order, ho_sigma, ho_corruptions
        The CAE+H objective of every layer: lambda, gamma, the corruption's std and copies.
    pretrain_epochs, pretrain_lr, pretrain_batch_size
        Adam pre-training of each layer.
    n_tangents : tuple of int
        The grid of ``k`` (tangents a point); the bases are computed once at the largest.
    betas : tuple of float
        The grid of beta (tangent propagation's weight), all > 0.
    tangent_target : {"logits", "probabilities"}
        What tangent propagation keeps flat.
    tangent_projections : int or None
        Random-sign projections of the penalty (None: all ``k`` products).
    tangent_iterations, tangent_oversample : int
        Subspace iterations and extra directions of
        :func:`~contractive.tangents.tangent_bases`.
    select_size, select_epochs, select_lr
        The grid is searched by fine-tuning on the first ``select_size`` training images
        for ``select_epochs`` at ``select_lr``, without dropout.
    finetune_epochs, finetune_lr, finetune_batch_size, dropout, input_dropout
        The final fine-tuning of every stack, with and without tangent propagation.
    label_counts : tuple of int
        Labelled images of the semi-supervised rows (empty: none).
    semi_depth : int
        The stack the semi-supervised rows fine-tune.
    semi_steps : int
        SGD steps of each semi-supervised fine-tuning (epochs follow from the label count).
    seed : int
        Seeds pre-training, the tangents, the label subsets and fine-tuning.

    Examples
    --------
    >>> small = dataclasses.replace(FULL, hidden=(500,), depths=(1,), name="full (changed)")
    >>> check_mtc_protocol(small).as_dict()["hidden"]
    [500]
    """

    name: str
    train_size: int
    val_size: int
    hidden: tuple[int, ...]
    depths: tuple[int, ...]
    contraction: float
    higher_order: float
    ho_sigma: float
    ho_corruptions: int
    pretrain_epochs: int
    pretrain_lr: float
    pretrain_batch_size: int
    n_tangents: tuple[int, ...]
    betas: tuple[float, ...]
    tangent_target: str
    tangent_projections: int | None
    tangent_iterations: int
    tangent_oversample: int
    select_size: int
    select_epochs: int
    select_lr: float
    finetune_epochs: int
    finetune_lr: float
    finetune_batch_size: int
    dropout: float
    input_dropout: float
    label_counts: tuple[int, ...]
    semi_depth: int
    semi_steps: int
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The settings as JSON-ready values (tuples as lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


#: The full protocol: two CAE+H layers of 1000 units on 50000 MNIST images, k and beta
#: searched on 10000 labelled images, 40 epochs of final fine-tuning with dropout. On 2 CPU
#: cores depth 1 with its semi-supervised rows takes about 1.5 hours and depth 2 about as much
#: again (docs/mtc.md has the cost of each stage).
FULL = MTCProtocol(
    name="full",
    train_size=50000,
    val_size=10000,
    hidden=(1000, 1000),
    depths=(1, 2),
    contraction=0.5,
    higher_order=0.1,
    ho_sigma=0.1,
    ho_corruptions=2,
    pretrain_epochs=15,
    pretrain_lr=1e-3,
    pretrain_batch_size=128,
    n_tangents=(5, 15),
    # beta = 10 on the probabilities flattened them everywhere (80 % validation error after
    # 5 epochs in the first full run), so the grid stays around 1.
    betas=(0.3, 1.0, 3.0),
    tangent_target="probabilities",
    tangent_projections=1,
    tangent_iterations=2,
    tangent_oversample=5,
    select_size=10000,
    select_epochs=5,
    select_lr=0.1,
    finetune_epochs=40,
    finetune_lr=0.1,
    finetune_batch_size=64,
    dropout=0.5,
    input_dropout=0.2,
    label_counts=(100, 600, 1000, 3000),
    semi_depth=1,
    semi_steps=2000,
)

#: ``--quick``: one 500-unit layer on 10000 images, one grid point, 1000 labels only.
QUICK = dataclasses.replace(
    FULL,
    name="quick",
    train_size=10000,
    val_size=2000,
    hidden=(500,),
    depths=(1,),
    pretrain_epochs=5,
    n_tangents=(15,),
    betas=(1.0,),
    select_size=2000,
    select_epochs=1,
    finetune_epochs=15,
    dropout=0.0,
    input_dropout=0.0,
    label_counts=(1000,),
    semi_steps=600,
)


def check_mtc_protocol(protocol: MTCProtocol, n_features: int = 784) -> MTCProtocol:
    """Check every setting against data of ``n_features`` columns; returns ``protocol``.

    Raises
    ------
    ConfigError
        A setting is out of range; the message names it, the constraint and the value.

    Examples
    --------
    >>> check_mtc_protocol(QUICK).name
    'quick'
    >>> try:
    ...     check_mtc_protocol(dataclasses.replace(QUICK, n_tangents=(900,)))
    ... except ValueError as e:
    ...     print(str(e)[-47:])
    hidden layer, features) = 500. Got 900 instead.
    """
    p = protocol
    for name in ("train_size", "val_size", "ho_corruptions", "pretrain_epochs"):
        check_int(name, getattr(p, name), low=1)
    for name in ("pretrain_batch_size", "tangent_iterations", "select_epochs", "semi_steps"):
        check_int(name, getattr(p, name), low=1)
    check_int("tangent_oversample", p.tangent_oversample, low=0)
    for name in ("select_size", "finetune_epochs", "finetune_batch_size", "semi_depth"):
        check_int(name, getattr(p, name), low=1)
    check_int("seed", p.seed, low=0)
    for name in ("contraction", "higher_order"):
        check_real(name, getattr(p, name), low=0)
    for name in ("ho_sigma", "pretrain_lr", "select_lr", "finetune_lr"):
        check_real(name, getattr(p, name), low=0, closed="neither")
    for name in ("dropout", "input_dropout"):
        check_real(name, getattr(p, name), low=0, high=1, closed="left")
    check_choice("tangent_target", p.tangent_target, ("logits", "probabilities"))
    if p.tangent_projections is not None:
        check_int("tangent_projections", p.tangent_projections, low=1)
    if not p.hidden:
        raise ConfigError("The 'hidden' parameter must name at least one layer. Got () instead.")
    for units in p.hidden:
        check_int("hidden", units, low=1)
    if not p.depths or any(not 1 <= d <= len(p.hidden) for d in p.depths):
        raise ConfigError(
            f"The 'depths' parameter must be layer counts in [1, {len(p.hidden)}]. "
            f"Got {p.depths} instead."
        )
    if not 1 <= p.semi_depth <= len(p.hidden):
        raise ConfigError(
            f"The 'semi_depth' parameter must be in [1, {len(p.hidden)}]. "
            f"Got {p.semi_depth} instead."
        )
    bound = min(min(p.hidden), n_features)
    if not p.n_tangents:
        raise ConfigError("The 'n_tangents' parameter must hold at least one k. Got ().")
    for k in p.n_tangents:
        check_int("n_tangents", k, low=1)
    if max(p.n_tangents) > bound:
        raise ConfigError(
            "The 'n_tangents' parameter must be at most min(smallest hidden layer, features) = "
            f"{bound}. Got {max(p.n_tangents)} instead."
        )
    if not p.betas:
        raise ConfigError("The 'betas' parameter must hold at least one beta. Got ().")
    for beta in p.betas:
        check_real("betas", beta, low=0, closed="neither")
    for n in p.label_counts:
        check_int("label_counts", n, low=10)
    return protocol


def layer_config(protocol: MTCProtocol, layer: int, device: str) -> Config:
    """The Config of CAE+H layer ``layer`` (0-based) of the stack.

    Sigmoid units, tied weights, cross-entropy (the codes of a sigmoid layer lie in [0, 1],
    as the pixels do), Adam, no validation split, seeded ``seed + layer``.

    Examples
    --------
    >>> cfg = layer_config(QUICK, 0, "cpu")
    >>> cfg.hidden, cfg.higher_order, cfg.ho_corruptions
    ([500], 0.1, 2)
    """
    one_layer = dataclasses.replace(split_protocol(protocol), hidden=protocol.hidden[layer])
    return autoencoder_config(one_layer, None, None, device, seed=protocol.seed + layer).replace(
        contraction=protocol.contraction,
        higher_order=protocol.higher_order,
        ho_sigma=protocol.ho_sigma,
        ho_corruptions=protocol.ho_corruptions,
    )


def split_protocol(protocol: MTCProtocol) -> Protocol:
    """The Table 1 protocol whose sizes and seed :func:`~.splits.load_split` reads.

    Examples
    --------
    >>> split_protocol(QUICK).train_size
    10000
    """
    return Protocol(
        protocol.name,
        protocol.train_size,
        protocol.val_size,
        protocol.hidden[0],
        protocol.pretrain_epochs,
        protocol.pretrain_lr,
        protocol.pretrain_batch_size,
        protocol.finetune_epochs,
        protocol.finetune_batch_size,
        0,
        0,
        {},
        seed=protocol.seed,
    )


def epochs_for(steps: int, n: int, batch_size: int) -> int:
    """Epochs that make at least ``steps`` SGD steps over ``n`` rows.

    Examples
    --------
    >>> epochs_for(3000, 100, 64), epochs_for(3000, 3000, 64)
    (1500, 64)
    """
    return max(1, math.ceil(steps / math.ceil(n / batch_size)))
