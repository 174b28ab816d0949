"""Evaluating learned features: supervised fine-tuning, a linear probe, greedy stacking.

The protocol of Rifai et al. (2011) judges an encoder by what it does for a classifier:

``finetune``
    The encoder's layers (weights *and* biases, copied, never shared) initialise the hidden
    layers of an MLP, a new softmax layer is put on top, and the whole network is trained with
    cross-entropy; the weights of the epoch with the lowest validation error are kept.
``linear_probe``
    Multinomial logistic regression on frozen codes: a cheap second view that needs no
    gradient through the encoder.
``train_stack``
    Greedy layer-wise training: layer ``k + 1`` is an autoencoder (a CAE with the paper's
    settings) trained on the codes of layer ``k``; the stack is then fine-tuned as a whole
    (the paper's CAE-2).

The read-outs measured before fine-tuning (SAT, mean ``||J_f(x)||_F``) are in
:mod:`contractive.analysis`.

Error rates here are fractions in [0, 1]; :mod:`contractive.experiments` reports percentages.
Nothing loops over samples in Python: every pass works on whole minibatches of in-memory
tensors.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .exceptions import ConfigError, TrainingDivergedError
from .stacking import (
    ArrayLike,
    EncoderLike,
    as_samples,
    encode,
    module_device,
    stack_encoder,
    train_stack,
)
from .stopping import EarlyStopping
from .tangent_prop import tangent_propagation_penalty
from .validation import check_choice, check_int, check_real, is_int, parameter_error

__all__ = [
    "EncoderLike",
    "FinetuneEpoch",
    "FinetuneResult",
    "ProbeResult",
    "build_classifier",
    "encode",
    "finetune",
    "linear_probe",
    "stack_encoder",
    "test_error",
    "train_stack",
]

_OPTIMIZERS = ("sgd", "adam")
_SCHEDULES = ("constant", "cosine")


# ---------------------------------------------------------------------------------------------
# Inputs.


def _as_labels(y: ArrayLike, n: int, name: str) -> Tensor:
    """``y`` as an int64 tensor ``(n,)`` of non-negative class indices."""
    t = torch.from_numpy(np.asarray(y)) if isinstance(y, np.ndarray) else y
    if not isinstance(t, Tensor) or t.dtype.is_floating_point or t.dtype == torch.bool:
        kind = t.dtype if isinstance(t, Tensor) else type(t).__name__
        raise ConfigError(f"The '{name}' parameter must hold integer class labels. Got {kind}.")
    if t.shape != (n,):
        raise ConfigError(
            f"The '{name}' parameter must have shape ({n},), one label per sample. "
            f"Got shape {tuple(t.shape)} instead."
        )
    if n and int(t.min()) < 0:
        raise ConfigError(f"The '{name}' parameter must hold labels >= 0. Got {int(t.min())}.")
    return t.long()


# ---------------------------------------------------------------------------------------------
# Supervised evaluation.


def build_classifier(
    encoder: EncoderLike, n_features: int, n_classes: int, *, activation: str = "sigmoid"
) -> nn.Sequential:
    """An MLP classifier whose hidden layers are copies of ``encoder``'s, plus a new output layer.

    The copies keep the encoder's weights and biases exactly (the encoder itself is never
    modified by training the classifier). The output layer ``nn.Linear(d_h, n_classes)``
    starts at zero, as the logistic-regression layer of the Theano tutorials: it adds no random
    signal of its own, so a fine-tuning run depends on its seed only through the shuffling.

    Parameters
    ----------
    encoder : EncoderLike
        See :func:`stack_encoder`.
    n_features : int
        Input size ``d_x`` (used to find the code size ``d_h``).
    n_classes : int
        Outputs of the new layer.
    activation : str
        After each bare ``nn.Linear`` in ``encoder``.

    Returns
    -------
    nn.Sequential
        ``(*encoder layers, [nn.Flatten()], nn.Linear(d_h, n_classes))``, mapping
        ``(B, n_features)`` to logits ``(B, n_classes)``.

    Examples
    --------
    >>> from contractive import mlp_autoencoder
    >>> build_classifier(mlp_autoencoder([784, 1000]), 784, 10)
    Sequential(
      (0): Linear(in_features=784, out_features=1000, bias=True)
      (1): Sigmoid()
      (2): Linear(in_features=1000, out_features=10, bias=True)
    )
    """
    n_features = check_int("n_features", n_features, low=1)
    n_classes = check_int("n_classes", n_classes, low=1)
    features = list(stack_encoder(encoder, activation=activation))
    body = nn.Sequential(*features)
    dev = module_device(body)
    with torch.no_grad():
        sample = body(torch.zeros(1, n_features, device=dev))  # (1, d_h) or (1, C, H, W)
    if sample.dim() > 2:
        features.append(nn.Flatten())
    # skip_init: the layer is zeroed anyway, so it need not draw from the global generator.
    head = nn.utils.skip_init(nn.Linear, int(sample[0].numel()), n_classes, device=dev)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*features, head)


def test_error(
    classifier: nn.Module,
    X: ArrayLike,
    y: ArrayLike,
    *,
    batch_size: int = 4096,  # noqa: PT028 (a library function that ruff takes for a test)
) -> float:
    """Fraction of the samples that ``classifier`` misclassifies (argmax of its outputs).

    Parameters
    ----------
    classifier : nn.Module
        Maps ``(B, d_x)`` to class scores ``(B, n_classes)``.
    X : Tensor or ndarray
        Inputs ``(n, d_x)``.
    y : Tensor or ndarray
        Integer labels ``(n,)``.
    batch_size : int
        Rows per forward pass.

    Returns
    -------
    float
        In [0, 1].

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> scores = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # nn.Identity() passes them on
    >>> test_error(nn.Identity(), scores, torch.tensor([0, 0]))
    0.5
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    X = as_samples(X, "X")
    labels = _as_labels(y, X.shape[0], "y")
    device = module_device(classifier)
    was_training = classifier.training
    classifier.eval()
    wrong = 0
    with torch.no_grad():
        for i in range(0, X.shape[0], batch_size):
            pred = classifier(X[i : i + batch_size].to(device)).argmax(dim=1).cpu()  # (B,)
            wrong += int((pred != labels[i : i + batch_size]).sum())
    classifier.train(was_training)
    return wrong / X.shape[0]


# pytest would otherwise collect ``test_error`` from any test module that imports it by name.
test_error.__test__ = False  # type: ignore[attr-defined]


@dataclass
class FinetuneEpoch:
    """One epoch of :func:`finetune`.

    Attributes
    ----------
    epoch : int
        1-based.
    train_loss : float
        Mean cross-entropy over the epoch's minibatches (weighted by their sizes), without
        :func:`finetune`'s ``extra_loss``.
    val_error : float
        Validation error after the epoch, in [0, 1].
    lr : float
        Learning rate used during the epoch.
    time : float
        Seconds for the epoch, validation included.
    """

    epoch: int
    train_loss: float
    val_error: float
    lr: float
    time: float


@dataclass
class FinetuneResult:
    """What :func:`finetune` reports besides the classifier.

    Attributes
    ----------
    val_error : float
        Lowest validation error over the epochs, in [0, 1]; the returned classifier has the
        weights of that epoch.
    best_epoch : int
        1-based epoch of ``val_error``.
    epochs_run : int
        Epochs done (fewer than asked when early stopping triggered).
    stopped_early : bool
        Whether ``patience`` epochs without improvement ended the run.
    seconds : float
        Wall time of the whole fine-tuning.
    history : list of FinetuneEpoch
    """

    val_error: float
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    seconds: float
    history: list[FinetuneEpoch] = field(default_factory=list)


def finetune(
    encoder: EncoderLike,
    X_train: ArrayLike,
    y_train: ArrayLike,
    X_val: ArrayLike,
    y_val: ArrayLike,
    *,
    epochs: int = 30,
    lr: float = 0.05,
    batch_size: int = 64,
    patience: int = 0,
    seed: int = 0,
    optimizer: str = "sgd",
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    dropout: float = 0.0,
    input_dropout: float = 0.0,
    extra_loss: Callable[[nn.Sequential, Tensor, Tensor], Tensor] | None = None,
    tangents: ArrayLike | None = None,
    tangent_weight: float = 0.0,
    tangent_target: str = "logits",
    tangent_projections: int | None = None,
    schedule: str = "cosine",
    n_classes: int | None = None,
    activation: str = "sigmoid",
    device: torch.device | str | None = None,
    on_epoch: Callable[[FinetuneEpoch], None] | None = None,
) -> tuple[nn.Sequential, FinetuneResult]:
    """Fine-tune an MLP classifier initialised from a trained encoder (Rifai et al., 2011).

    The classifier is :func:`build_classifier`'s: copies of the encoder's layers (weights and
    biases as they are; the encoder itself is not modified) followed by a new zero-initialised
    output layer (the softmax is in the loss). Every parameter is trained with cross-entropy;
    after each epoch the validation error is measured, and the weights of the best epoch (the
    first one with the lowest error) are restored at the end.

    Parameters
    ----------
    encoder : EncoderLike
        A trained ``nn.Linear`` (then ``activation`` follows it), :class:`Autoencoder`, encoder
        module, or a sequence of these (a greedy stack from :func:`train_stack`).
    X_train, y_train : Tensor or ndarray
        Training inputs ``(n, d_x)`` and integer labels ``(n,)``.
    X_val, y_val : Tensor or ndarray
        Validation inputs and labels, for early stopping and for picking the weights.
    epochs : int
        Maximum number of passes over the training data.
    lr : float
        Initial learning rate.
    batch_size : int
        Minibatch size.
    patience : int
        Stop after this many epochs without a lower validation error; 0 runs every epoch.
    seed : int
        Seeds the shuffling; the run is deterministic on the CPU.
    optimizer : {"sgd", "adam"}
        SGD uses ``momentum``.
    momentum : float
        SGD momentum, in [0, 1).
    weight_decay : float
        L2 penalty on every parameter (the optimizer's ``weight_decay``), >= 0.
    dropout : float
        Dropout probability (Srivastava et al., 2014) on the input of every layer after the
        first: the codes fed to the next hidden layer and to the output layer; in [0, 1).
    input_dropout : float
        Dropout probability on the pixels fed to the first layer; in [0, 1). Both are
        active while training only, and their masks are drawn from a generator seeded with
        ``seed`` (the global RNG is left as it was).
    extra_loss : callable, optional
        A term added to the training objective: at every step ``extra_loss(classifier, xb,
        yb)`` is called with the classifier (in training mode, dropout layers included) and
        the minibatch on the training device, inputs ``xb`` ``(B, d_x)`` and labels ``yb``
        ``(B,)``, and the scalar tensor it returns is added to the batch's mean cross-entropy
        before the backward pass, so its gradient reaches every parameter it depends on. For
        instance the first hidden layer's contraction penalty ``lambda * ||J_f(x)||_F^2``
        (:func:`contractive.penalties.jacobian_penalty` of that layer and its activation,
        batch mean), or tangent propagation's penalty on the derivatives of the classifier's
        outputs along given directions (the Manifold Tangent Classifier, Rifai et al., NIPS
        2011). The ``train_loss`` of :class:`FinetuneEpoch` stays the cross-entropy alone.
        None (the default) adds nothing.
    tangents : array-like of shape (n, k, d_x), optional
        Tangent vectors of each training sample (:func:`contractive.tangents.tangent_bases`;
        a float16 memory map is fine, rows are read a minibatch at a time). With
        ``tangent_weight > 0`` the objective gains ``tangent_weight`` times the batch mean of
        :func:`contractive.tangent_prop.tangent_propagation_penalty` along them: the Manifold
        Tangent Classifier.
    tangent_weight : float
        beta, in [0, inf).
    tangent_target : {"logits", "probabilities"}
        What the penalty keeps flat along the tangents: the output layer's logits, or the
        softmax probabilities (flat already where the classifier is confident).
    tangent_projections : int, optional
        Estimate the penalty from this many random-sign combinations of each sample's
        tangents (unbiased, ``tangent_projections / k`` of the cost; the signs are drawn
        from ``seed``); None computes all ``k`` products.
    schedule : {"cosine", "constant"}
        ``"cosine"`` decays the learning rate from ``lr`` towards 0 over ``epochs`` epochs.
    n_classes : int, optional
        Defaults to ``1 + max(label)`` over both label sets.
    activation : str
        After each bare ``nn.Linear`` in ``encoder``.
    device : torch.device or str, optional
        Where to train; defaults to the encoder's device.
    on_epoch : callable, optional
        Called with each :class:`FinetuneEpoch` (e.g. to print progress).

    Returns
    -------
    classifier : nn.Sequential
        In eval mode, with the best-validation weights; outputs logits ``(B, n_classes)``.
    result : FinetuneResult

    Raises
    ------
    ConfigError
        An option or input is invalid, or ``extra_loss`` returned something other than a
        scalar tensor.
    TrainingDivergedError
        The training loss became NaN or infinite (lower ``lr``).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(4, 8)
    >>> X = torch.rand(64, 4)
    >>> y = (X[:, 0] > 0.5).long()
    >>> clf, res = finetune(enc, X, y, X, y, epochs=3, lr=0.5, batch_size=16)
    >>> clf
    Sequential(
      (0): Linear(in_features=4, out_features=8, bias=True)
      (1): Sigmoid()
      (2): Linear(in_features=8, out_features=2, bias=True)
    )
    >>> res.epochs_run, 0.0 <= res.val_error <= 1.0
    (3, True)

    A term of one's own in the objective, here an L2 penalty on the output layer:

    >>> def small_output(classifier, xb, yb):
    ...     return 1e-3 * classifier[-1].weight.square().sum()
    >>> _, res = finetune(enc, X, y, X, y, epochs=1, extra_loss=small_output)
    >>> res.epochs_run
    1
    """
    epochs = check_int("epochs", epochs, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    lr = check_real("lr", lr, low=0, closed="neither")
    patience = check_int("patience", patience, low=0)
    optimizer = check_choice("optimizer", optimizer, _OPTIMIZERS)
    schedule = check_choice("schedule", schedule, _SCHEDULES)
    momentum = check_real("momentum", momentum, low=0, high=1, closed="left")
    weight_decay = check_real("weight_decay", weight_decay, low=0)
    dropout = check_real("dropout", dropout, low=0, high=1, closed="left")
    input_dropout = check_real("input_dropout", input_dropout, low=0, high=1, closed="left")
    if extra_loss is not None and not callable(extra_loss):
        raise parameter_error("extra_loss", "a callable or None", extra_loss)
    tangent_weight = check_real("tangent_weight", tangent_weight, low=0)
    tangent_target = check_choice("tangent_target", tangent_target, ("logits", "probabilities"))
    if tangent_projections is not None:
        tangent_projections = check_int("tangent_projections", tangent_projections, low=1)
    Xt, Xv = as_samples(X_train, "X_train"), as_samples(X_val, "X_val")
    if tangents is not None:
        shape = tuple(tangents.shape)
        if len(shape) != 3 or shape[0] != Xt.shape[0] or shape[2] != Xt.shape[1] or not shape[1]:
            raise parameter_error(
                "tangents",
                f"an array of shape (n, k, d_x) = ({Xt.shape[0]}, k >= 1, {Xt.shape[1]}) to "
                "match X_train",
                f"shape {shape}",
            )
    yt, yv = _as_labels(y_train, Xt.shape[0], "y_train"), _as_labels(y_val, Xv.shape[0], "y_val")
    if Xv.shape[1] != Xt.shape[1]:
        raise ConfigError(
            f"X_val has {Xv.shape[1]} features but X_train has {Xt.shape[1]}; they must match."
        )
    n_seen = int(max(int(yt.max()), int(yv.max()))) + 1
    if n_classes is None:
        n_classes = n_seen
    elif not is_int(n_classes) or n_classes < n_seen:
        raise parameter_error(
            "n_classes", f"an int of at least {n_seen} (1 + the largest label)", n_classes
        )
    n_classes = int(n_classes)

    classifier = build_classifier(encoder, Xt.shape[1], n_classes, activation=activation)
    if dropout or input_dropout:
        classifier = _with_dropout(classifier, dropout, input_dropout)
    dev = torch.device(device) if device is not None else module_device(classifier)
    classifier.to(dev)

    params = list(classifier.parameters())
    for p in params:
        p.requires_grad_(True)  # a frozen encoder is still fine-tuned as a whole
    opt: torch.optim.Optimizer
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    else:
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)

    def lr_at(epoch: int) -> float:  # 0-based epoch
        if schedule == "constant":
            return lr
        return 0.5 * lr * (1.0 + math.cos(math.pi * epoch / epochs))

    gen = torch.Generator().manual_seed(seed)
    sign_gen = torch.Generator().manual_seed(seed + 1)  # the projections' signs
    n = Xt.shape[0]
    stopper = EarlyStopping(patience)
    history: list[FinetuneEpoch] = []
    stopped_early = False
    start = time.perf_counter()
    # nn.Dropout draws its masks from the device's global generator: seed it from ``seed`` for
    # this run only, and give the caller's generator state back afterwards.
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        for epoch in range(epochs):
            t0 = time.perf_counter()
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch)
            classifier.train()
            perm = torch.randperm(n, generator=gen)  # (n,)
            loss_sum = torch.zeros((), device=dev)  # summed on the device: no sync per step
            for i in range(0, n, batch_size):
                idx = perm[i : i + batch_size]
                xb, yb = Xt[idx].to(dev), yt[idx].to(dev)  # (B, d_x), (B,)
                loss = F.cross_entropy(classifier(xb), yb)
                objective = loss
                if tangents is not None and tangent_weight > 0:
                    ub = torch.as_tensor(np.asarray(tangents[idx.numpy()])).to(dev)  # (B, k, d_x)
                    net = classifier if tangent_target == "logits" else _Softmax(classifier)
                    penalty = tangent_propagation_penalty(
                        net, xb, ub, projections=tangent_projections, generator=sign_gen
                    )  # (B,)
                    objective = objective + tangent_weight * penalty.mean()
                if extra_loss is not None:
                    objective = objective + _scalar_term(extra_loss(classifier, xb, yb))
                opt.zero_grad(set_to_none=True)
                objective.backward()
                opt.step()
                loss_sum += loss.detach() * idx.shape[0]
            train_loss = float(loss_sum) / n
            # A too-large step can overflow the weights while the loss stays finite (saturated
            # sigmoids hide it), so the weights are checked too.
            problem = None
            if not math.isfinite(train_loss):
                problem = f"the training loss is {train_loss}"
            elif not all(bool(torch.isfinite(p).all()) for p in params):
                problem = "some weights are no longer finite"
            if problem is not None:
                raise TrainingDivergedError(
                    f"Fine-tuning diverged at epoch {epoch + 1}: {problem}. "
                    f"Lower the 'lr' parameter (got {lr!r})."
                )
            val_error = test_error(classifier, Xv, yv)
            record = FinetuneEpoch(
                epoch + 1, train_loss, val_error, lr_at(epoch), time.perf_counter() - t0
            )
            history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if stopper.step(epoch + 1, val_error, classifier):
                stopped_early = epoch + 1 < epochs  # patience ran out before the last epoch
                break
    stopper.restore(classifier)
    classifier.eval()
    best = stopper.state
    # epochs >= 1 ran, so both are set.
    assert best.best_val is not None
    assert best.best_epoch is not None
    result = FinetuneResult(
        val_error=best.best_val,
        best_epoch=best.best_epoch,
        epochs_run=len(history),
        stopped_early=stopped_early,
        seconds=time.perf_counter() - start,
        history=history,
    )
    return classifier, result


class _Softmax(nn.Module):
    """``classifier`` followed by the softmax: tangent propagation on probabilities."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.classifier(x), dim=1)


def _scalar_term(value: object) -> Tensor:
    """What ``extra_loss`` returned, if it is a 0-d tensor that can be added to the loss."""
    if not isinstance(value, Tensor) or value.dim() != 0:
        got = f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else repr(value)
        raise ConfigError(
            f"extra_loss must return a scalar tensor (0-d) to add to the loss. Got {got} instead."
        )
    return value


def _with_dropout(classifier: nn.Sequential, p: float, p_input: float) -> nn.Sequential:
    """``classifier`` with ``nn.Dropout(p_input)`` first and ``nn.Dropout(p)`` before every later
    layer that has weights (the next hidden layer's and the output layer's inputs)."""
    modules: list[nn.Module] = [nn.Dropout(p_input)] if p_input else []
    first = True
    for module in classifier:
        if next(module.parameters(recurse=True), None) is not None:
            if not first and p:
                modules.append(nn.Dropout(p))
            first = False
        modules.append(module)
    return nn.Sequential(*modules)


class ProbeResult(NamedTuple):
    """What :func:`linear_probe` returns.

    Attributes
    ----------
    error : float
        Misclassified fraction of the evaluation set, in [0, 1].
    accuracy : float
        ``1 - error``.
    classifier : sklearn.linear_model.LogisticRegression
        The fitted probe.
    """

    error: float
    accuracy: float
    classifier: Any


def linear_probe(
    features_train: ArrayLike,
    y_train: ArrayLike,
    features_val: ArrayLike,
    y_val: ArrayLike,
    *,
    C: float = 1.0,
    max_iter: int = 1000,
    n_threads: int | None = None,
) -> ProbeResult:
    """Multinomial logistic regression on frozen features, scored on a second set.

    Parameters
    ----------
    features_train, y_train : Tensor or ndarray
        Codes ``(n, d_h)`` (e.g. from :func:`encode`) and integer labels ``(n,)``.
    features_val, y_val : Tensor or ndarray
        Where the probe is scored.
    C : float
        Inverse L2 regularisation strength of :class:`sklearn.linear_model.LogisticRegression`.
    max_iter : int
        L-BFGS iterations; a probe that has not converged by then is used as it is (the
        convergence warning is silenced, since a cheap probe is the point).
    n_threads : int, optional
        BLAS threads for the fit; by default as many as torch uses
        (:func:`torch.get_num_threads`). On a machine busy with other jobs, BLAS threads that
        wait for each other make the fit tens of times slower, so ``--threads 1`` reaches the
        probe too.

    Returns
    -------
    ProbeResult

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0]] * 10)
    >>> y = np.array([0, 1] * 10)
    >>> linear_probe(X, y, X, y).error
    0.0
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    C = check_real("C", C, low=0, closed="neither")
    max_iter = check_int("max_iter", max_iter, low=1)
    if n_threads is not None:
        n_threads = check_int("n_threads", n_threads, low=1)
    Ft, Fv = as_samples(features_train, "features_train"), as_samples(features_val, "features_val")
    yt = _as_labels(y_train, Ft.shape[0], "y_train").numpy()
    yv = _as_labels(y_val, Fv.shape[0], "y_val").numpy()
    if Fv.shape[1] != Ft.shape[1]:
        raise ConfigError(
            f"features_val has {Fv.shape[1]} columns but features_train has {Ft.shape[1]}; "
            "they must match."
        )
    if np.unique(yt).size < 2:
        raise ConfigError("The 'y_train' parameter must hold at least two classes. Got one.")
    probe = LogisticRegression(C=C, max_iter=max_iter)
    with warnings.catch_warnings(), threadpool_limits(limits=n_threads or torch.get_num_threads()):
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(Ft.numpy(), yt)
        accuracy = float((probe.predict(Fv.numpy()) == yv).mean())
    return ProbeResult(1.0 - accuracy, accuracy, probe)
