"""A scikit-learn transformer on top of the training code: :class:`ContractiveAutoencoder`.

The estimator follows scikit-learn's contract to the letter (``__init__`` stores its arguments,
``fit`` validates them and returns ``self``, learned state ends in ``_``), so it works in
:class:`~sklearn.pipeline.Pipeline`, :class:`~sklearn.model_selection.GridSearchCV`,
:func:`~sklearn.base.clone` and passes :func:`sklearn.utils.estimator_checks.check_estimator`.
Training is :class:`contractive.train.Trainer` with a :class:`contractive.config.Config` built
from the parameters; a fitted estimator saves to a run folder that ``contractive info`` and
``contractive encode`` read, and pickles as plain arrays (never a pickled ``nn.Module``).

Precision: the weights are trained and stored in float32. ``transform`` and the other
inference methods compute in the floating dtype of the ``X`` they are given (float64 weights
are cast from the float32 ones), and return that dtype. Float64 inference is what makes a row's
code independent of the other rows in the batch up to float64 rounding, which scikit-learn
checks (float32 kernels round differently for different batch shapes); pass float32 ``X`` for
float32 speed.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_array, check_is_fitted, validate_data
from torch import Tensor

from .config import Config
from .estimator_params import check_estimator_params, check_unit_interval, seed_from
from .exceptions import CheckpointError, ConfigError, TrainingDivergedError
from .locking import RunLock
from .losses import LOSSES
from .nn import Autoencoder
from .penalties import jacobian_penalty
from .runs import (
    CONFIG_FILE,
    METRICS_FILE,
    build_model,
    load_run,
    read_metrics,
    save_model,
    write_config,
    write_metrics,
)
from .train import Callback, EarlyStoppingLog, EpochMetrics, Trainer
from .validation import is_int

__all__ = ["ContractiveAutoencoder"]

# Rows per inference step: large enough to keep the matrix units busy, small enough that a
# 1000-unit float64 code of one chunk stays in the tens of megabytes on a GPU.
_INFERENCE_BATCH = 4096
#: What a saved estimator records as the data source (``contractive encode`` needs --data).
_DATA_SOURCE = "<in-memory array passed to ContractiveAutoencoder.fit>"


def _json_value(value: Any) -> Any:
    """A parameter value as plain JSON (tuples as lists, NumPy scalars as Python ones)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple | list | np.ndarray):
        return [_json_value(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------


class ContractiveAutoencoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Contractive autoencoder (Rifai et al., 2011) as a scikit-learn transformer.

    Learns an encoder ``f`` and a decoder ``g`` that minimise, over the training samples,
    ``L(x, g(f(x))) + contraction * ||J_f(x)||_F^2``: the reconstruction loss (summed over
    features) plus the squared Frobenius norm of the encoder's Jacobian, which makes the code
    insensitive to small moves of ``x`` off the data. :meth:`transform` returns the code
    ``f(x)``, :meth:`inverse_transform` the reconstruction ``g(h)``.

    Parameters
    ----------
    n_components : int, default=100
        Size of the code: units of the last (or only) encoder layer.
    contraction : float, default=0.1
        Weight lambda of the Jacobian penalty, on the paper's scale: the penalty and the
        reconstruction loss are both summed per sample and averaged over the batch. 0 trains
        a plain autoencoder. Choose it by the score of what uses the codes (e.g. a classifier
        in a :class:`~sklearn.pipeline.Pipeline`), not by :meth:`score`, which measures
        reconstruction only and so always prefers 0.
    hidden_layer_sizes : int, sequence of int or None, default=None
        Extra encoder layers before the code layer, e.g. ``(500,)`` gives
        ``n_features -> 500 -> n_components``. None is the paper's one-layer CAE. The decoder
        mirrors the encoder.
    activation : {"sigmoid", "tanh", "relu", "leaky_relu", "softplus", "elu", "gelu", \
"identity"}, default="sigmoid"
        Encoder activation (and between decoder layers). Sigmoid is the paper's choice.
    tied : bool, default=True
        Decoder weights are the transposed encoder weights, which rules out the trivial
        "shrink in the encoder, grow in the decoder" way around the penalty.
    loss : {"auto", "bce", "mse"}, default="auto"
        Reconstruction loss. ``"bce"``: binary cross-entropy with a sigmoid output, the
        paper's choice, for ``X`` in [0, 1] (other values raise ValueError). ``"mse"``:
        squared error with a linear output, for any real ``X`` (standardize it first).
        ``"auto"``: ``"bce"`` when all of the training ``X`` lies in [0, 1], else ``"mse"``;
        the choice is in ``loss_``.
    penalty : {"auto", "analytic", "exact", "hutchinson", "layerwise"}, default="auto"
        How ``||J_f(x)||_F^2`` is computed (see :mod:`contractive.penalties`). ``"auto"`` is
        the exact closed form for one layer, the full Jacobian for small deep encoders and a
        random-projection estimate otherwise. ``"analytic"`` needs one layer.
    epochs : int, default=20
        Passes over the training data (fewer if early stopping ends training).
    batch_size : int, default=128
        Samples per optimizer step.
    learning_rate : float, default=1e-3
        Step size of the optimizer.
    optimizer : {"adam", "sgd"}, default="adam"
        Adam trains in a few epochs without tuning; ``"sgd"`` (momentum 0.9) is the paper's.
    validation_fraction : float, default=0.0
        Share of the training samples held out at random (with ``random_state``) to compute
        ``validation_loss_curve_`` and to drive early stopping. 0 trains on every sample.
    early_stopping : int, default=0
        Stop after this many epochs without improvement of the objective (on the validation
        split when ``validation_fraction > 0``, else on the training data) and restore the
        best weights. 0 turns early stopping off.
    random_state : int, RandomState instance or None, default=None
        Seeds the weight initialisation, the shuffling and the validation split. Pass an int
        for reproducible results. The global torch random state is left untouched.
    device : str, default="auto"
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, or ``"auto"`` (CUDA when available). Training
        runs there; ``model_`` stays there. A pickled or loaded estimator comes back on the
        CPU.
    verbose : int, default=0
        0 is silent; 1 prints one line per epoch (and why training stopped early); 2 adds a
        progress bar per epoch. Output goes to stderr.

    Attributes
    ----------
    model_ : contractive.nn.Autoencoder
        The trained network (float32, in eval mode).
    config_ : contractive.config.Config
        The training options the parameters were turned into; ``config_.seed`` is the seed
        that ``random_state`` gave.
    loss_ : str
        The reconstruction loss used, ``"bce"`` or ``"mse"`` (what ``loss="auto"`` chose).
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during :meth:`fit`. Defined only when ``X`` has feature names
        that are all strings.
    n_iter_ : int
        Number of epochs run.
    loss_curve_ : list of float
        Training objective (reconstruction + contraction * penalty) of each epoch, averaged
        over the epoch's batches.
    validation_loss_curve_ : list of float or None
        The objective on the validation split after each epoch; None when
        ``validation_fraction=0``.
    history_ : list of contractive.train.EpochMetrics
        Every per-epoch metric: reconstruction and penalty apart, validation values, time.

    See Also
    --------
    contractive.train_run : Train from a :class:`~contractive.config.Config` into a run folder.
    sklearn.decomposition.PCA : The linear baseline.
    sklearn.neural_network.BernoulliRBM : Another unsupervised feature learner for [0, 1] data.

    Notes
    -----
    The penalty is the per-sample squared Frobenius norm of the encoder's Jacobian, computed
    exactly for one layer at the cost of the reconstruction (``J_f(x) = diag(s'(a)) W``).
    Training data is converted to float32; inference follows the dtype of its input (see the
    module docstring).

    References
    ----------
    S. Rifai, P. Vincent, X. Muller, X. Glorot, Y. Bengio. Contractive Auto-Encoders:
    Explicit Invariance During Feature Extraction. ICML 2011.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from contractive.estimator import ContractiveAutoencoder
    >>> X = load_digits().data / 16.0
    >>> cae = ContractiveAutoencoder(n_components=32, epochs=5, random_state=0)
    >>> codes = cae.fit_transform(X)
    >>> codes.shape, codes.dtype, cae.loss_
    ((1797, 32), dtype('float64'), 'bce')
    >>> cae.inverse_transform(codes).shape
    (1797, 64)
    >>> cae.jacobian_norm(X[:3]).shape
    (3,)
    >>> cae.get_feature_names_out()[:2].tolist()
    ['contractiveautoencoder0', 'contractiveautoencoder1']
    """

    def __init__(
        self,
        n_components: int = 100,
        *,
        contraction: float = 0.1,
        hidden_layer_sizes: int | Sequence[int] | None = None,
        activation: str = "sigmoid",
        tied: bool = True,
        loss: str = "auto",
        penalty: str = "auto",
        epochs: int = 20,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        validation_fraction: float = 0.0,
        early_stopping: int = 0,
        random_state: int | np.random.RandomState | None = None,
        device: str = "auto",
        verbose: int = 0,
    ) -> None:
        self.n_components = n_components
        self.contraction = contraction
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.tied = tied
        self.loss = loss
        self.penalty = penalty
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.validation_fraction = validation_fraction
        self.early_stopping = early_stopping
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    # -- scikit-learn plumbing ----------------------------------------------------------------

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        # Inference runs in the dtype of X (the float32 weights are cast), so both are kept.
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        # Cross-entropy treats inputs as probabilities; its stricter [0, 1] bound is checked
        # in fit, with a message that starts like scikit-learn's for negative values.
        tags.input_tags.positive_only = self.loss == "bce"
        return tags

    @property
    def _n_features_out(self) -> int:
        # Read from fitted state, so that get_feature_names_out is NotFitted before fit.
        return int(self.config_.hidden[-1])

    def _validate_params(self) -> None:
        check_estimator_params(self.get_params(deep=False))
        if self.penalty == "analytic" and self._extra_layers():
            raise ConfigError(
                "The 'penalty' parameter of ContractiveAutoencoder can be 'analytic' only for "
                f"a one-layer encoder, but hidden_layer_sizes={self.hidden_layer_sizes!r} adds "
                "layers: use 'auto', 'exact', 'hutchinson' or 'layerwise', or "
                "hidden_layer_sizes=None."
            )

    def _extra_layers(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if sizes is None:
            return []
        if is_int(sizes):
            return [int(sizes)]
        return [int(s) for s in sizes]  # type: ignore[union-attr]

    def _seed(self) -> int:
        return seed_from(self.random_state)

    def _config(self, loss: str, seed: int) -> Config:
        return Config.from_dict(
            {
                "data": _DATA_SOURCE,
                "architecture": "mlp",
                "hidden": [*self._extra_layers(), int(self.n_components)],
                "activation": self.activation,
                "tied": bool(self.tied),
                "loss": loss,
                "contraction": float(self.contraction),
                "penalty": self.penalty,
                "optimizer": self.optimizer,
                "lr": float(self.learning_rate),
                "batch_size": int(self.batch_size),
                "epochs": int(self.epochs),
                "validation_fraction": float(self.validation_fraction),
                "patience": int(self.early_stopping),
                "seed": seed,
                "device": self.device,
            },
            source="ContractiveAutoencoder",
        )

    def _callbacks(self) -> list[Callback]:
        if not self.verbose:
            return []
        from .callbacks import EpochLogger, ProgressBar

        callbacks: list[Callback] = [EpochLogger(), EarlyStoppingLog(_log)]
        if self.verbose >= 2:
            callbacks.insert(0, ProgressBar())
        return callbacks

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X: npt.ArrayLike, y: Any = None) -> ContractiveAutoencoder:
        """Train the autoencoder on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training samples; converted to float32. In [0, 1] for ``loss="bce"``.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        self : ContractiveAutoencoder
            The fitted estimator.

        Raises
        ------
        ValueError
            A parameter is invalid, ``X`` is not a finite 2-D numeric array, or
            ``loss="bce"`` and ``X`` has values outside [0, 1].
        contractive.TrainingDivergedError
            The objective became NaN or infinite (lower ``learning_rate``).
        """
        from .data import train_validation_split
        from .train import resolve_device

        self._validate_params()
        data: np.ndarray = validate_data(self, X, dtype=[np.float64, np.float32])
        loss = self.loss
        if loss != "bce":
            in_unit = bool(data.min() >= 0.0 and data.max() <= 1.0)
            loss = "bce" if loss == "auto" and in_unit else "mse"
        else:
            check_unit_interval(data, "ContractiveAutoencoder")
        seed = self._seed()
        config = self._config(loss, seed)
        device = resolve_device(config.device)

        X32 = np.array(data, dtype=np.float32, order="C")  # a writable copy: torch shares it
        train_idx, val_idx = train_validation_split(X32.shape[0], config.validation_fraction, seed)
        X_val = torch.from_numpy(X32[val_idx]) if len(val_idx) else None
        X_train = torch.from_numpy(X32[train_idx] if len(val_idx) else X32)

        # Seeded on a fork of the global generator: reproducible without touching the user's.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build_model(config, X32.shape[1], None)
        trainer = Trainer(model, config, callbacks=self._callbacks(), device=device)
        try:
            history = trainer.fit(X_train, X_val)
        except TrainingDivergedError as exc:
            raise TrainingDivergedError(
                f"{exc} (For ContractiveAutoencoder these are the 'learning_rate' and "
                "'contraction' parameters; standardize X if its values are large.)"
            ) from None

        self.model_: Autoencoder = model.eval()  # trainer.model is model, moved to device
        self.config_ = config
        self.loss_ = loss
        self.history_: list[EpochMetrics] = list(history)
        self.n_iter_ = len(history)
        self.loss_curve_ = [m.total for m in history]
        self.validation_loss_curve_ = (
            [float(m.val_total) for m in history if m.val_total is not None]
            if X_val is not None
            else None
        )
        self._data_meta = {"source": _DATA_SOURCE, "n_train": len(X_train), "n_val": len(val_idx)}
        return self

    # -- inference -------------------------------------------------------------------------------

    def _check_X(self, X: npt.ArrayLike) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=[np.float64, np.float32])

    def _model_for(self, dtype: np.dtype) -> Autoencoder:
        if dtype == np.float32:
            return self.model_
        # A float64 copy (sharing nothing with model_), so model_ itself never changes here.
        return copy.deepcopy(self.model_).to(torch.float64)

    def _chunks(self, X: np.ndarray, model: Autoencoder) -> Iterator[Tensor]:
        device = next(model.parameters()).device
        for start in range(0, X.shape[0], _INFERENCE_BATCH):
            # torch.from_numpy needs writable memory; read-only (memory-mapped) X is copied.
            chunk = np.require(X[start : start + _INFERENCE_BATCH], requirements=("C", "W"))
            yield torch.from_numpy(chunk).to(device)

    @torch.no_grad()
    def transform(self, X: npt.ArrayLike) -> np.ndarray:
        """Encode ``X``: the code ``f(x)`` of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Samples to encode.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            The codes, float32 for float32 ``X``, float64 otherwise.
        """
        X = self._check_X(X)
        model = self._model_for(X.dtype)
        parts = [model.encode(x).flatten(1).cpu() for x in self._chunks(X, model)]
        return _stack(parts, (0, self._n_features_out), X.dtype)

    @torch.no_grad()
    def inverse_transform(self, X: npt.ArrayLike) -> np.ndarray:
        """Decode codes back to the input space: the reconstruction ``g(h)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_components)
            Codes, e.g. from :meth:`transform`.

        Returns
        -------
        ndarray of shape (n_samples, n_features_in_)
            Reconstructions, in [0, 1] when ``loss_ == "bce"``; the dtype of ``X``
            (float64 unless ``X`` is float32).
        """
        check_is_fitted(self)
        H = check_array(X, dtype=[np.float64, np.float32])
        if H.shape[1] != self._n_features_out:
            raise ValueError(
                f"X has {H.shape[1]} features, but ContractiveAutoencoder.inverse_transform is "
                f"expecting {self._n_features_out} features (the code size, n_components) as "
                "input."
            )
        model = self._model_for(H.dtype)
        parts = [model.decode(h).cpu() for h in self._chunks(H, model)]
        return _stack(parts, (0, self.n_features_in_), H.dtype)

    @torch.no_grad()
    def score(self, X: npt.ArrayLike, y: Any = None) -> float:
        """Negative mean reconstruction loss per sample: higher is better.

        The loss is ``loss_`` (cross-entropy or squared error) summed over features, without
        the contraction penalty, averaged over samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Samples to reconstruct; in [0, 1] when ``loss_ == "bce"``.
        y : None
            Ignored; present for API consistency.

        Returns
        -------
        float
        """
        X = self._check_X(X)
        if self.loss_ == "bce":
            check_unit_interval(X, "ContractiveAutoencoder")
        model = self._model_for(X.dtype)
        loss_fn = LOSSES[self.loss_][0]
        total = 0.0
        for x in self._chunks(X, model):
            total += float(loss_fn(model(x), x).sum())
        return -total / X.shape[0]

    def jacobian_norm(self, X: npt.ArrayLike) -> np.ndarray:
        """Per-sample Frobenius norm of the encoder's Jacobian, ``||J_f(x)||_F``.

        The square root of the penalty that training weighs by ``contraction``, computed with
        the same method (``config_.penalty``): exact for a one-layer encoder; with
        ``penalty="hutchinson"`` it is a random estimate (seeded by ``config_.seed``); with
        ``"layerwise"`` the root of the sum of the layers' own penalties.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features_in_)
            Points at which to take the Jacobian.

        Returns
        -------
        ndarray of shape (n_samples,)
            Not squared; the dtype of ``X`` (float64 unless ``X`` is float32).
        """
        X = self._check_X(X)
        model = self._model_for(X.dtype)
        device = next(model.parameters()).device
        generator = torch.Generator(device).manual_seed(self.config_.seed)
        parts = []
        for x in self._chunks(X, model):
            # exact/hutchinson differentiate through the encoder: grad on, graph dropped at once
            with torch.enable_grad():
                sq = jacobian_penalty(
                    model.encoder,
                    model.prepare(x),
                    method=self.config_.penalty,
                    probes=self.config_.probes,
                    generator=generator,
                )
            parts.append(sq.detach().clamp_min(0.0).sqrt().cpu())
        return _stack(parts, (0,), X.dtype)

    # -- persistence -----------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        # A copy: object.__getstate__ returns the live __dict__, which must keep its module.
        state: dict[str, Any] = dict(super().__getstate__())
        if "model_" in state:
            # Weights as NumPy arrays: portable, memory-mappable by joblib, no pickled module.
            state["model_"] = {
                k: v.detach().cpu().numpy().copy() for k, v in self.model_.state_dict().items()
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        weights = state.get("model_")
        if isinstance(weights, dict):
            config: Config = state["config_"]
            with torch.random.fork_rng(devices=[]):
                model = build_model(config, int(state["n_features_in_"]), None)
            # np.array copies: joblib may hand back read-only memory maps.
            model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in weights.items()})
            state = {**state, "model_": model.eval()}
        super().__setstate__(state)

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the fitted estimator to a run folder (JSON and safetensors; no pickle).

        The folder holds ``config.json`` (the training options, the input size and this
        estimator's parameters), ``model.safetensors`` and ``metrics.jsonl`` (one line per
        epoch), so :func:`contractive.load_run`, ``contractive info RUN`` and
        ``contractive encode RUN --data FILE`` work on it, and :meth:`load` restores the
        estimator.

        Parameters
        ----------
        path : str or path-like
            The run folder; created if missing.
        overwrite : bool, default=False
            Replace a run already in ``path``.

        Returns
        -------
        Path
            The run folder.

        Raises
        ------
        FileExistsError
            ``path`` already holds a run and ``overwrite`` is False.
        RunLockedError
            Another process is writing ``path`` (training into it, or saving to it).
        """
        check_is_fitted(self)
        run_dir = Path(path)
        with RunLock(run_dir):
            if (run_dir / CONFIG_FILE).exists() and not overwrite:
                raise FileExistsError(
                    f"{run_dir} already holds a run ({CONFIG_FILE}); pass overwrite=True to "
                    "replace it, or choose another folder."
                )
            self._write_run(run_dir)
        return run_dir

    def _write_run(self, run_dir: Path) -> None:
        params = {k: _json_value(v) for k, v in self.get_params(deep=False).items()}
        if isinstance(self.random_state, np.random.RandomState):
            params["random_state"] = self.config_.seed  # the seed it gave: refits reproduce
        names = getattr(self, "feature_names_in_", None)
        meta = {
            "n_features": int(self.n_features_in_),
            "image_shape": None,
            "scaling": None,
            "world_size": 1,
            "data": getattr(self, "_data_meta", {"source": _DATA_SOURCE}),
            "estimator": {
                "class": type(self).__name__,
                "params": params,
                "loss": self.loss_,
                "n_iter": int(self.n_iter_),
                "feature_names_in": None if names is None else [str(n) for n in names],
            },
        }
        # The run folder's own writers, as training uses them.
        save_model(run_dir, self.model_)
        write_metrics(run_dir, self.history_)
        # config.json last: a folder with it is a complete run.
        write_config(run_dir, self.config_, meta)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ContractiveAutoencoder:
        """Restore an estimator written by :meth:`save` (reads JSON and safetensors only).

        Parameters
        ----------
        path : str or path-like
            The run folder.

        Returns
        -------
        ContractiveAutoencoder
            Fitted, with ``model_`` on the CPU.

        Raises
        ------
        contractive.CheckpointError
            A file is missing or damaged, or the folder was not written by :meth:`save`
            (use :func:`contractive.load_run` for folders from ``contractive train``).
        """
        run = load_run(path)
        saved = run.meta.get("estimator")
        if not isinstance(saved, dict) or not isinstance(saved.get("params"), dict):
            raise CheckpointError(
                f"{run.path / CONFIG_FILE} has no 'estimator' entry: the folder was not written "
                "by ContractiveAutoencoder.save. Load it with contractive.load_run instead."
            )
        params = dict(saved["params"])
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        try:
            estimator = cls(**params)
        except TypeError as exc:
            raise CheckpointError(f"{run.path / CONFIG_FILE}: {exc}.") from None
        estimator.model_ = run.model
        estimator.config_ = run.config
        estimator.loss_ = run.config.loss
        estimator.n_features_in_ = run.n_features
        if saved.get("feature_names_in") is not None:
            estimator.feature_names_in_ = np.asarray(saved["feature_names_in"], dtype=object)
        history = [EpochMetrics(**row) for row in read_metrics(run.path / METRICS_FILE)]
        estimator.history_ = history
        estimator.n_iter_ = int(saved.get("n_iter", len(history)))
        estimator.loss_curve_ = [m.total for m in history]
        val = [float(m.val_total) for m in history if m.val_total is not None]
        estimator.validation_loss_curve_ = val if run.config.validation_fraction > 0 else None
        estimator._data_meta = run.meta.get("data") or {"source": _DATA_SOURCE}
        return estimator


def _stack(parts: list[Tensor], empty_shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    if not parts:
        return np.empty(empty_shape, dtype=dtype)
    return torch.cat(parts).numpy().astype(dtype, copy=False)


def _log(message: str) -> None:
    import sys

    from tqdm.auto import tqdm

    tqdm.write(message, file=sys.stderr)
