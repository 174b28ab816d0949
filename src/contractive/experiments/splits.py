"""An experiment's data: training, validation and test sets of any dataset the loaders know.

Every paper experiment needs three disjoint labelled sets. Where they come from depends on
the dataset, by one rule each (:func:`load_split`; the rule is also written into the
outputs, as :attr:`Split.description`):

- **Own validation set** (the MNIST variations and shape sets of Larochelle et al., 2007,
  from :mod:`contractive.variations`): their training, validation and test splits, the first
  ``train_size`` and ``val_size`` rows of the first two when the protocol asks for fewer.
- **Training and test sets only** (``mnist``, ``fashion-mnist``, ``cifar-bw``, ``digits``):
  the last ``val_size`` of the ``n`` training images validate (MNIST: the last 10000 of
  60000, as the paper), the first ``train_size`` train, and the test set tests. When the two
  do not fit in ``n`` (the protocol's sizes are MNIST's), the last ``min(val_size, n // 6)``
  validate and the first ``min(train_size, n - n_val)`` train.
- **A user's labelled file** (``.npz`` with a label array, ``.csv`` with a label column): the
  rows shuffled by ``np.random.default_rng(seed)``, then 5/7 train, 1/7 validate and 1/7 test
  (MNIST's 50000 / 10000 / 10000 of 70000), each capped by ``train_size`` and ``val_size``.

A protocol's ``test_size`` (0: all) keeps only the first ``test_size`` test images.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .. import variations
from ..data import DATASETS, OWN_VALIDATION, Dataset, load_dataset
from ..exceptions import DataError
from .protocol import Protocol

__all__ = ["Split", "load_split"]

# A dataset without a validation set gives at most this share of its training set to one.
_VAL_SHARE = 6


@dataclass
class Split:
    """An experiment's data as tensors: training, validation and test inputs and labels.

    Attributes
    ----------
    X_train, y_train : Tensor
        ``(n_train, d_x)`` inputs in [0, 1] and ``(n_train,)`` int64 labels.
    X_val, y_val : Tensor
        The validation set, never trained on.
    X_test, y_test : Tensor
        The test set.
    name : str
        The dataset's name (or file path).
    n_classes : int
        ``1 + the largest label`` over the three sets.
    description : str
        How the three sets were drawn, as the outputs state it.
    provenance : str or None
        The dataset's :attr:`~contractive.data.Dataset.provenance` (e.g. "regenerated ...").

    Examples
    --------
    >>> import torch
    >>> X, y = torch.rand(6, 4), torch.tensor([0, 1, 0, 1, 2, 2])
    >>> split = Split(X[:4], y[:4], X[4:5], y[4:5], X[5:], y[5:], name="toy", n_classes=3)
    >>> split.n_features, split.sizes
    (4, (4, 1, 1))
    """

    X_train: Tensor
    y_train: Tensor
    X_val: Tensor
    y_val: Tensor
    X_test: Tensor
    y_test: Tensor
    name: str = "mnist"
    n_classes: int = 10
    description: str = ""
    provenance: str | None = None

    @property
    def n_features(self) -> int:
        """Inputs per sample, ``d_x``."""
        return int(self.X_train.shape[1])

    @property
    def sizes(self) -> tuple[int, int, int]:
        """``(n_train, n_val, n_test)``."""
        return (int(self.X_train.shape[0]), int(self.X_val.shape[0]), int(self.X_test.shape[0]))


def load_split(
    source: str | os.PathLike[str],
    protocol: Protocol,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    label_column: str | int | None = None,
) -> Split:
    """The training, validation and test sets of ``source``, by the module docstring's rules.

    Parameters
    ----------
    source : str or path-like
        A name in :data:`contractive.data.DATASETS` or a labelled ``.npz`` / ``.csv`` file.
    protocol : Protocol
        Its ``train_size``, ``val_size`` (caps) and ``seed`` (a user file's shuffle) apply.
    data_dir : path-like, optional
        Where the dataset's files are (see :func:`contractive.data.load_dataset`).
    label_column : str or int, optional
        A user file's label column (``.csv``) or array (``.npz``).

    Returns
    -------
    Split

    Raises
    ------
    DataError
        The data cannot be read, has no labels, or is too small to split.

    Examples
    --------
    >>> from contractive.experiments import QUICK
    >>> split = load_split("digits", QUICK)
    >>> split.sizes, split.n_features, split.n_classes
    ((1198, 239, 360), 64, 10)
    >>> print(split.description[:64])
    digits: training set the first 1198 of its 1437 training images,
    """
    text = os.fspath(source)
    name = text.strip().lower()
    if name in OWN_VALIDATION:
        # One read of the set (train, valid and test rows in that order), not one per split:
        # each read of a regenerated set checks the md5 of its whole cache file.
        spec = variations.VARIATIONS[name]
        whole = load_dataset(name, split="all", data_dir=data_dir)
        n_fit = spec.n_train + spec.n_valid
        n_train = min(protocol.train_size, spec.n_train)
        n_val = min(protocol.val_size, spec.n_valid)
        test = whole.subset(slice(n_fit, None))
        description = (
            f"{name}: its own splits; training set the first {n_train} of its "
            f"{spec.n_train} training images, validation set the first {n_val} of its "
            f"{spec.n_valid} validation images, test set its {test.n_samples} test images"
        )
        return _split(
            name,
            whole.subset(slice(n_train)),
            whole.subset(slice(spec.n_train, spec.n_train + n_val)),
            test,
            description,
            protocol.test_size,
        )
    if name in DATASETS:
        train = load_dataset(name, split="train", data_dir=data_dir)
        test = load_dataset(name, split="test", data_dir=data_dir)
        n = train.n_samples
        n_train, n_val = protocol.train_size, protocol.val_size
        shrunk = ""
        if n_train + n_val > n:
            n_val = min(n_val, n // _VAL_SHARE)
            n_train = min(n_train, n - n_val)
            shrunk = (
                f" (train_size + val_size = {protocol.train_size} + {protocol.val_size} is "
                f"more than its {n} training images: the validation set is at most 1/"
                f"{_VAL_SHARE} of them, the training set the rest)"
            )
        description = (
            f"{name}: training set the first {n_train} of its {n} training images, "
            f"validation set the last {n_val}, test set its {test.n_samples} test images{shrunk}"
        )
        return _split(
            name,
            train.subset(slice(n_train)),
            train.subset(slice(n - n_val, n)),
            test,
            description,
            protocol.test_size,
        )
    data = load_dataset(text, label_column=label_column)
    n = data.n_samples
    order = np.random.default_rng(protocol.seed).permutation(n)
    n_test = n_val = n // 7
    n_rest = n - n_test - n_val
    description = (
        f"{text}: rows shuffled with seed {protocol.seed}; training set the first "
        f"{min(protocol.train_size, n_rest)} of {n_rest} (5/7), validation set "
        f"{min(protocol.val_size, n_val)} of {n_val} (1/7), test set {n_test} (1/7) of its {n} rows"
    )
    return _split(
        text,
        data.subset(order[: min(protocol.train_size, n_rest)]),
        data.subset(order[n_rest : n_rest + min(protocol.val_size, n_val)]),
        data.subset(order[n_rest + n_val :]),
        description,
        protocol.test_size,
    )


def _split(
    name: str,
    train: Dataset,
    val: Dataset,
    test: Dataset,
    description: str,
    test_size: int = 0,
) -> Split:
    """Tensors of three datasets that must all have labels and rows."""
    if 0 < test_size < test.n_samples:
        description += f"; tested on the first {test_size} of the {test.n_samples} test images"
        test = test.subset(slice(test_size))
    for part, ds in (("training", train), ("validation", val), ("test", test)):
        if ds.y is None:
            raise DataError(
                f"{name} has no labels: an experiment needs them (pass the label column or "
                "array with --label-column)"
            )
        if ds.n_samples == 0:
            raise DataError(f"{name}: the {part} set is empty; the dataset is too small to split")
    assert train.y is not None
    assert val.y is not None
    assert test.y is not None
    n_classes = 1 + int(max(train.y.max(), val.y.max(), test.y.max()))
    return Split(
        X_train=torch.from_numpy(train.X),
        y_train=torch.from_numpy(train.y),
        X_val=torch.from_numpy(val.X),
        y_val=torch.from_numpy(val.y),
        X_test=torch.from_numpy(test.X),
        y_test=torch.from_numpy(test.y),
        name=name,
        n_classes=n_classes,
        description=description,
        provenance=train.provenance,
    )
