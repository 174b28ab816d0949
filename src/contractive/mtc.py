"""The Manifold Tangent Classifier (Rifai et al., NIPS 2011) as a scikit-learn classifier.

:class:`ManifoldTangentClassifier` chains the MTC's steps as the library implements them:
:func:`~contractive.stacking.train_stack` (CAE+H layers),
:func:`~contractive.tangents.tangent_bases` (the stack's tangent planes) and
:func:`~contractive.evaluate.finetune` (with the tangent-propagation penalty). Like
:class:`~contractive.estimator.ContractiveAutoencoder` it passes scikit-learn's
``check_estimator`` and pickles its networks as plain arrays. Inference runs in float32 for
float32 ``X``, else in float64, where a row's prediction does not depend on the other rows of
its batch (float32 kernels round differently for other batch shapes).
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn
from tqdm.auto import tqdm

from .callbacks import EpochLogger, ProgressBar
from .config import Config
from .estimator_params import COMMON_CONSTRAINTS, check_unit_interval, seed_from
from .evaluate import FinetuneEpoch, FinetuneResult, build_classifier, finetune
from .exceptions import DataError, TrainingDivergedError
from .nn import Autoencoder
from .runs import build_model
from .stacking import greedy_layer_configs, stack_encoder, train_stack
from .tangents import tangent_bases
from .train import Callback, resolve_device
from .validation import Interval, Options, is_int, parameter_error

__all__ = ["ManifoldTangentClassifier"]

_OWNER = "ManifoldTangentClassifier"
_INFERENCE_BATCH = 4096  # rows per inference step: a float64 code of 1000 units is 33 MB
_POSITIVE_INT = Interval(int, 1)
_Rule = tuple[Callable[[Any], bool], str]


def _rule(constraint: Interval | Options | None) -> _Rule:
    assert constraint is not None  # a Config option checked by a range or choices
    return constraint.__contains__, str(constraint)


def _hidden_ok(v: Any) -> bool:
    seq = isinstance(v, Sequence | np.ndarray) and not isinstance(v, str) and len(v) > 0
    return v in _POSITIVE_INT or (seq and all(s in _POSITIVE_INT for s in v))


#: Parameter -> (test, constraint as scikit-learn words it). Config options use Config's own.
_CONSTRAINTS: dict[str, _Rule] = {
    "hidden": (
        _hidden_ok,
        f"{_POSITIVE_INT} or a non-empty sequence of ints in the range {_POSITIVE_INT.range}",
    ),
    "contraction": _rule(Config.constraint("contraction")),
    "higher_order": _rule(Config.constraint("higher_order")),
    "ho_sigma": _rule(Config.constraint("ho_sigma")),
    "loss": _rule(Options(("auto", "bce", "mse"))),
    "pretrain_epochs": _rule(Config.constraint("epochs")),
    "pretrain_lr": _rule(Config.constraint("lr")),
    "n_tangents": _rule(_POSITIVE_INT),
    "tangent_weight": _rule(Interval(float, 0)),
    "tangent_target": _rule(Options(("probabilities", "logits"))),
    "tangent_iterations": _rule(Interval(int, 0)),
    "tangent_projections": (lambda v: v is None or v in _POSITIVE_INT, f"None or {_POSITIVE_INT}"),
    "finetune_epochs": _rule(_POSITIVE_INT),
    "finetune_lr": _rule(Interval(float, 0, closed="neither")),
    "batch_size": _rule(Config.constraint("batch_size")),
    "dropout": _rule(Interval(float, 0, 1, closed="left")),
    "validation_fraction": _rule(Config.constraint("validation_fraction")),
    "early_stopping": _rule(Config.constraint("patience")),
    **COMMON_CONSTRAINTS,
}


class ManifoldTangentClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Manifold Tangent Classifier (Rifai et al., NIPS 2011) as a scikit-learn classifier.

    :meth:`fit` does the MTC's three steps. (1) Pre-train a stack of CAE+H layers greedily on
    ``X`` (labels unused), each with ``contraction * ||J||_F^2 + higher_order * E||J(x) -
    J(x + eps)||_F^2``. (2) At every training row, take the ``n_tangents`` leading right
    singular vectors of the stack's Jacobian ``dh^(K)/dx``, the directions of the data
    manifold, held fixed from then on. (3) Fine-tune the stack plus a softmax layer with
    cross-entropy plus ``tangent_weight * sum_j ||do(x)/dx u_j||^2``, so that the output ``o``
    (probabilities or logits) does not move along the manifold.

    Parameters
    ----------
    hidden : int or sequence of int, default=(1000,)
        Units of each layer of the stack, bottom first (sigmoid, tied weights).
    contraction, higher_order : float, default=0.1
        lambda and gamma: weights of each layer's Jacobian penalty and of the CAE+H Hessian
        penalty (4 corrupted copies per row; 0 trains plain CAEs).
    ho_sigma : float, default=0.1
        Standard deviation of the CAE+H corruption.
    loss : {"auto", "bce", "mse"}, default="auto"
        Reconstruction loss of the first layer: ``"bce"`` (the paper's) needs ``X`` in
        [0, 1]; ``"mse"`` takes any real ``X``; ``"auto"`` is ``"bce"`` when the training
        ``X`` lies in [0, 1]. Upper layers reconstruct sigmoid codes, in [0, 1], with
        ``"bce"``.
    pretrain_epochs, pretrain_lr : int and float, default=20 and 1e-3
        Epochs and Adam learning rate of each layer's pre-training.
    n_tangents : int, default=15
        Tangents per row (d_M), at most ``min(min(hidden), n_features)``: the rank the
        stack's Jacobian can have.
    tangent_weight : float, default=0.1
        beta: weight of the tangent-propagation penalty; 0 is plain fine-tuning of the stack.
    tangent_target : {"probabilities", "logits"}, default="probabilities"
        What the penalty keeps flat along the tangents.
    tangent_iterations : int, default=4
        Power iterations of the randomized tangent computation (more: closer to exact).
    tangent_projections : int or None, default=None
        Estimate the penalty from this many random-sign combinations of each row's tangents
        (unbiased, at ``tangent_projections / n_tangents`` of the cost); None is exact.
    finetune_epochs, finetune_lr : int and float, default=30 and 0.1
        Epochs and initial learning rate of fine-tuning (SGD, momentum 0.9, cosine decay).
    batch_size : int, default=64
        Rows per step, in pre-training and fine-tuning.
    dropout : float, default=0.0
        Dropout on the inputs of the upper layers during fine-tuning.
    validation_fraction : float, default=0.1
        Share of the rows held out (stratified, seeded) to pick the fine-tuning epoch of lowest
        validation error. With 0, or too few rows for a stratified split (a class of one row,
        fewer held-out or remaining rows than classes), the training rows pick it instead.
    early_stopping : int, default=0
        Stop fine-tuning after this many epochs without a lower validation error; 0: off.
    device : str, default="auto"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available).
    random_state : int, RandomState instance or None, default=None
        Seeds the weights, shuffling, corruption, split and tangents; the global torch
        random state is left untouched. Pass an int for reproducible results.
    verbose : int, default=0
        0 is silent; 1 prints a line per epoch of every step; 2 adds progress bars (stderr).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted; the columns of :meth:`predict_proba`.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names seen during :meth:`fit`, when ``X`` has string column names.
    loss_ : str
        The first layer's reconstruction loss, ``"bce"`` or ``"mse"`` (what ``"auto"`` chose).
    layers_ : list of contractive.nn.Autoencoder
        The pre-trained layers, bottom first (float32, eval mode), before fine-tuning.
    classifier_ : torch.nn.Sequential
        The fine-tuned stack and output layer: ``(B, n_features_in_)`` to logits
        ``(B, n_classes)`` (float32, eval mode).
    tangent_values_ : ndarray of shape (n_samples, n_tangents) or None
        Singular values of the stack's Jacobian at each row of ``X`` along its tangents,
        decreasing; None when ``tangent_weight=0`` (the tangents are then not computed).
    finetune_result_ : contractive.evaluate.FinetuneResult
        Validation error and epoch of the kept weights, and every epoch's metrics.
    configs_ : list of contractive.config.Config
        The pre-training options of each layer; ``configs_[0].seed`` is the seed that
        ``random_state`` gave (layer ``k`` uses that seed plus ``k``).
    n_validation_ : int
        Rows held out for the choice of epoch; 0 when the training rows chose it.
    n_iter_ : int
        Fine-tuning epochs run.

    Notes
    -----
    Cost (``n`` rows, ``d`` features, ``k = n_tangents``): CAE+H pre-training, 5 encoder passes
    per row and step; tangents once, about ``2 (k + 10) (tangent_iterations + 1)`` passes of the
    stack per row, held in ``4 n k d`` bytes (2.8 GB for 60000 MNIST rows and ``k = 15``); each
    fine-tuning step, ``k`` forward-mode Jacobian-vector products and their backward pass.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from contractive import ManifoldTangentClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:200] / 16.0, y[:200]
    >>> mtc = ManifoldTangentClassifier(
    ...     hidden=(32,), n_tangents=4, pretrain_epochs=1, finetune_epochs=2, random_state=0
    ... ).fit(X, y)
    >>> mtc.predict_proba(X[:3]).shape, mtc.tangent_values_.shape, mtc.n_validation_
    ((3, 10), (200, 4), 20)
    >>> mtc.classes_.tolist() == list(range(10)), 0.0 <= mtc.score(X, y) <= 1.0
    (True, True)
    """

    def __init__(
        self,
        hidden: int | Sequence[int] = (1000,),
        *,
        contraction: float = 0.1,
        higher_order: float = 0.1,
        ho_sigma: float = 0.1,
        loss: str = "auto",
        pretrain_epochs: int = 20,
        pretrain_lr: float = 1e-3,
        n_tangents: int = 15,
        tangent_weight: float = 0.1,
        tangent_target: str = "probabilities",
        tangent_iterations: int = 4,
        tangent_projections: int | None = None,
        finetune_epochs: int = 30,
        finetune_lr: float = 0.1,
        batch_size: int = 64,
        dropout: float = 0.0,
        validation_fraction: float = 0.1,
        early_stopping: int = 0,
        device: str = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.hidden = hidden
        self.contraction = contraction
        self.higher_order = higher_order
        self.ho_sigma = ho_sigma
        self.loss = loss
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.n_tangents = n_tangents
        self.tangent_weight = tangent_weight
        self.tangent_target = tangent_target
        self.tangent_iterations = tangent_iterations
        self.tangent_projections = tangent_projections
        self.finetune_epochs = finetune_epochs
        self.finetune_lr = finetune_lr
        self.batch_size = batch_size
        self.dropout = dropout
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    # -- scikit-learn plumbing ----------------------------------------------------------------

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Cross-entropy takes inputs as probabilities; fit checks the [0, 1] bound.
        tags.input_tags.positive_only = self.loss == "bce"
        return tags

    def _sizes(self) -> list[int]:
        return [int(self.hidden)] if is_int(self.hidden) else [int(s) for s in self.hidden]  # type: ignore[union-attr]

    def _seed(self) -> int:
        return seed_from(self.random_state)

    def _validate_params(self) -> None:
        for name, (ok, constraint) in _CONSTRAINTS.items():
            if not ok(value := getattr(self, name)):
                raise parameter_error(name, constraint, value, owner=_OWNER)

    def _layer_configs(self, loss: str, seed: int) -> list[Config]:
        stack = Config(
            data=f"<in-memory array passed to {_OWNER}.fit>",
            hidden=self._sizes(),
            loss=loss,
            contraction=float(self.contraction),
            higher_order=float(self.higher_order),
            ho_sigma=float(self.ho_sigma),
            lr=float(self.pretrain_lr),
            batch_size=int(self.batch_size),
            epochs=int(self.pretrain_epochs),
            validation_fraction=0.0,
            seed=seed,
            device=self.device,
        )
        # Layer k gets seed + k; the layers above the first reconstruct sigmoid codes.
        configs = greedy_layer_configs(stack)
        return [c if k == 0 else c.replace(loss="bce") for k, c in enumerate(configs)]

    def _callbacks(self) -> list[Callback]:
        # Per pre-training epoch: a summary line (verbose 1), and a progress bar (verbose 2).
        return [ProgressBar(), EpochLogger()][2 - min(int(self.verbose), 2) :]

    def _log(self, message: str) -> None:
        if self.verbose:
            tqdm.write(message, file=sys.stderr)  # never breaks a progress bar

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> ManifoldTangentClassifier:
        """Pre-train the stack on ``X``, compute the tangents, fine-tune on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training rows; converted to float32. In [0, 1] for ``loss="bce"``.
        y : array-like of shape (n_samples,)
            Class labels (any sortable values), at least two classes.

        Returns
        -------
        self : ManifoldTangentClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            A parameter is invalid (``n_tangents`` above ``min(min(hidden), n_features)``),
            ``X`` or ``y`` is malformed, ``y`` has one class, or ``X`` is outside [0, 1] for bce.
        contractive.TrainingDivergedError
            A loss became NaN or infinite (lower ``pretrain_lr`` or ``finetune_lr``).
        """
        self._validate_params()
        data, labels = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(labels)
        h, d = min(self._sizes()), data.shape[1]
        if self.n_tangents > min(h, d):
            rank = f"at most min(min(hidden)={h}, n_features={d}), the rank of the stack's Jacobian"
            constraint = f"an int in the range [1, {min(h, d)}]: {rank}"
            raise parameter_error("n_tangents", constraint, self.n_tangents, owner=_OWNER)
        classes, y_idx = np.unique(labels, return_inverse=True)  # y_idx: (n,) in [0, C)
        if len(classes) < 2:
            raise DataError(
                f"{_OWNER} needs samples of at least 2 classes in y; got 1 class "
                f"({classes.tolist()[0]!r}). A classifier cannot learn from one class."
            )
        in_unit = bool(data.min() >= 0.0 and data.max() <= 1.0)
        loss = ("bce" if in_unit else "mse") if self.loss == "auto" else self.loss
        if loss == "bce" and not in_unit:
            check_unit_interval(data, _OWNER)
        seed = self._seed()
        configs = self._layer_configs(loss, seed)
        device = resolve_device(configs[0].device)
        X32 = torch.from_numpy(np.array(data, dtype=np.float32, order="C"))  # (n, d), a copy
        y64 = torch.from_numpy(y_idx.astype(np.int64))  # (n,)

        self._log(f"{_OWNER}: pre-training {len(configs)} layer(s) on {len(X32)} rows")
        try:
            layers = train_stack(X32, configs, callbacks=self._callbacks(), device=device)
        except TrainingDivergedError as exc:
            raise TrainingDivergedError(f"{exc} (For {_OWNER} it is 'pretrain_lr'.)") from None

        tangents, values = None, None
        if self.tangent_weight > 0:  # with beta = 0 the tangents would go unused
            self._log(f"{_OWNER}: {self.n_tangents} tangents at each of {len(X32)} rows")
            encoder = stack_encoder(layers)  # (B, d) -> (B, hidden[-1])
            k, its, bar = int(self.n_tangents), int(self.tangent_iterations), self.verbose > 1
            # float16 storage: 60000 x 15 x 784 tangents take 1.4 GB instead of 2.8 GB; the
            # penalty casts each minibatch's rows back to float32.
            bases = tangent_bases(
                encoder, X32, k, iterations=its, seed=seed, progress=bar, dtype="float16"
            )
            tangents, values = bases.vectors, bases.values  # (n, k, d), (n, k)

        train_idx, val_idx = _split(y_idx, len(classes), float(self.validation_fraction), seed)
        tr, va = torch.from_numpy(train_idx), torch.from_numpy(val_idx)
        pick = va if len(va) else tr  # the rows that choose the epoch
        self._log(f"{_OWNER}: fine-tuning on {len(tr)} rows, choosing the epoch on {len(pick)}")
        try:
            classifier, result = finetune(
                layers,
                X32[tr],
                y64[tr],
                X32[pick],
                y64[pick],
                epochs=int(self.finetune_epochs),
                lr=float(self.finetune_lr),
                batch_size=int(self.batch_size),
                patience=int(self.early_stopping),
                seed=seed,
                dropout=float(self.dropout),
                # (n_tr, k, d); all rows are training rows without a held-out part
                tangents=tangents[train_idx] if tangents is not None and len(va) else tangents,
                tangent_weight=float(self.tangent_weight),
                tangent_target=self.tangent_target,
                tangent_projections=self.tangent_projections,
                n_classes=len(classes),
                device=device,
                on_epoch=self._log_epoch if self.verbose else None,
            )
        except TrainingDivergedError as exc:
            raise TrainingDivergedError(f"{exc} (For {_OWNER} it is 'finetune_lr'.)") from None

        self.classes_ = classes
        self.loss_ = loss
        self.layers_: list[Autoencoder] = layers
        # Without its dropout (the identity in eval mode) it is build_classifier's network.
        kept = [m for m in classifier if not isinstance(m, nn.Dropout)]
        self.classifier_ = nn.Sequential(*kept).eval()
        self.tangent_values_ = values
        self.finetune_result_: FinetuneResult = result
        self.n_validation_ = len(val_idx)
        self.n_iter_ = result.epochs_run
        self.configs_ = configs
        return self

    def _log_epoch(self, e: FinetuneEpoch) -> None:
        self._log(
            f"fine-tune epoch {e.epoch}/{self.finetune_epochs}: train loss {e.train_loss:.4f}, "
            f"validation error {e.val_error:.4f}, lr {e.lr:.4g} ({e.time:.1f}s)"
        )

    # -- inference -------------------------------------------------------------------------------

    def _logits(self, X: npt.ArrayLike) -> np.ndarray:
        """Logits ``(n, n_classes)`` in the floating dtype of ``X`` (float64 unless float32)."""
        check_is_fitted(self)
        data: np.ndarray = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        net = self.classifier_
        if data.dtype != np.float32:
            # A float64 copy, so classifier_ itself never changes here.
            net = copy.deepcopy(net).to(torch.float64)
        device = next(net.parameters()).device
        parts = [np.empty((0, len(self.classes_)), dtype=data.dtype)]
        with torch.no_grad():
            for start in range(0, len(data), _INFERENCE_BATCH):
                # from_numpy needs writable memory: read-only (memory-mapped) X is copied.
                x = np.require(data[start : start + _INFERENCE_BATCH], requirements=("C", "W"))
                parts.append(net(torch.from_numpy(x).to(device)).cpu().numpy())  # (B, C)
        return np.concatenate(parts).astype(data.dtype, copy=False)

    def decision_function(self, X: npt.ArrayLike) -> np.ndarray:
        """Logits ``(n_samples, n_classes)``; for two classes the log-odds of ``classes_[1]``,
        ``(n_samples,)``. Float32 for float32 ``X``, float64 otherwise."""
        logits = self._logits(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X: npt.ArrayLike) -> np.ndarray:
        """Softmax of the logits, ``(n_samples, n_classes)``, columns in ``classes_`` order.
        Float32 for float32 ``X``, float64 otherwise."""
        logits = self._logits(X)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))  # (n, C), shifted: no overflow
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        """The label (from ``classes_``) of highest probability of each row, ``(n_samples,)``."""
        best = self._logits(X).argmax(axis=1)  # (n,), checks fitted before classes_ is read
        return self.classes_[best]

    # -- persistence -----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(super().__getstate__())
        if "classifier_" in state:
            # Weights as NumPy arrays: portable, memory-mappable by joblib, no pickled module.
            state["layers_"] = [_arrays(layer) for layer in self.layers_]
            state["classifier_"] = _arrays(self.classifier_)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("classifier_"), dict):
            # Rebuilt as fit built them, their initial draws on a fork of the global generator.
            with torch.random.fork_rng(devices=[]):
                layers, n_in = [], int(state["n_features_in_"])
                for config, weights in zip(state["configs_"], state["layers_"], strict=True):
                    layers.append(_loaded(build_model(config, n_in, None), weights))
                    n_in = config.hidden[0]
                net = build_classifier(layers, int(state["n_features_in_"]), len(state["classes_"]))
            state = {**state, "layers_": layers, "classifier_": _loaded(net, state["classifier_"])}
        super().__setstate__(state)


def _split(y_idx: np.ndarray, n_classes: int, fraction: float, seed: int) -> tuple[Any, Any]:
    """Row indices ``(train, validation)``; the validation part is empty when no stratified
    split of ``fraction`` is possible (then the training rows pick the epoch)."""
    rows, n_val = np.arange(len(y_idx)), math.ceil(fraction * len(y_idx))  # as train_test_split
    small = np.bincount(y_idx, minlength=n_classes).min() < 2  # a class of one row
    if fraction == 0 or small or n_val < n_classes or len(rows) - n_val < n_classes:
        return rows, rows[:0]
    train, val = train_test_split(rows, test_size=fraction, stratify=y_idx, random_state=seed)
    return np.sort(train), np.sort(val)


def _arrays(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _loaded(module: nn.Module, weights: dict[str, np.ndarray]) -> Any:
    # np.array copies: joblib may hand back read-only memory maps.
    module.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
    return module.eval()
