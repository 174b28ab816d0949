"""Greedy stacking: encoders as one layer list, the codes they compute, layer-wise training.

``train_stack``
    Greedy layer-wise training: layer ``k + 1`` is an autoencoder (a CAE with the paper's
    settings) trained on the codes of layer ``k``; :func:`contractive.evaluate.finetune` then
    fine-tunes the stack as a whole (the paper's CAE-2).
``stack_encoder`` and ``encode``
    Any encoder, or a sequence of them (a greedy stack), as one ``nn.Sequential`` of copies of
    its modules, and the codes it gives, in batches without gradients.

:mod:`contractive.evaluate` re-exports these names.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .config import Config
from .encoders import to_tensor
from .exceptions import ConfigError
from .nn import Autoencoder, make_activation
from .train import Callback, Trainer, resolve_device
from .validation import check_int

__all__ = [
    "ArrayLike",
    "EncoderLike",
    "as_samples",
    "encode",
    "module_device",
    "stack_encoder",
    "train_stack",
]


#: What :func:`finetune` and :func:`encode` accept as an encoder:
#: an ``nn.Linear`` (its activation given separately), an :class:`Autoencoder` (its encoder),
#: any encoder ``nn.Module``, or a sequence of these applied in order (a greedy stack).
EncoderLike = nn.Module | Sequence[nn.Module]

ArrayLike = Tensor | np.ndarray

# Rows per forward pass when only predicting or encoding: large enough to keep the matrix
# units busy, small enough that a 1000-unit code of 4096 rows is 16 MB.
_EVAL_BATCH = 4096


# ---------------------------------------------------------------------------------------------
# Inputs.


def as_samples(X: ArrayLike, name: str) -> Tensor:
    """``X`` as a 2-D float32 tensor ``(n, d)`` with at least one row.

    Parameters
    ----------
    X : Tensor or ndarray
        The samples.
    name : str
        The parameter's name, for the message of a refusal.

    Returns
    -------
    Tensor

    Raises
    ------
    ConfigError
        When ``X`` is not a Tensor or array, not 2-D, or has no rows.

    Examples
    --------
    >>> as_samples(np.zeros((2, 3)), "X").dtype
    torch.float32
    >>> as_samples(np.zeros(3), "X_val")
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'X_val' parameter must be 2-D (n_samples,
    n_features) with at least one sample. Got shape (3,) instead.
    """
    X = to_tensor(X, name)
    if X.dim() != 2 or X.shape[0] == 0:
        raise ConfigError(
            f"The '{name}' parameter must be 2-D (n_samples, n_features) with at least one "
            f"sample. Got shape {tuple(X.shape)} instead."
        )
    return X.float()


# ---------------------------------------------------------------------------------------------
# Encoders as plain layer lists.


def _layers(encoder: EncoderLike, activation: str) -> list[nn.Module]:
    """Deep copies of the modules that map an input to its code, in order."""
    if isinstance(encoder, nn.Linear):
        # A bare affine layer: the activation is not part of the module.
        return [copy.deepcopy(encoder), make_activation(activation)]
    if isinstance(encoder, Autoencoder):
        layers: list[nn.Module] = []
        if encoder.input_shape is not None:
            # Conv encoders take images; the classifier is fed flat rows like the autoencoder.
            layers.append(nn.Unflatten(1, encoder.input_shape))
        layers += _flat_children(copy.deepcopy(encoder.encoder))
        if encoder.input_shape is not None:
            layers.append(nn.Flatten())
        return layers
    if isinstance(encoder, nn.Module):
        return _flat_children(copy.deepcopy(encoder))
    if isinstance(encoder, list | tuple) and len(encoder) > 0:
        return [m for part in encoder for m in _layers(part, activation)]
    raise ConfigError(
        "The 'encoder' parameter must be an nn.Linear, an Autoencoder, an encoder nn.Module "
        f"or a non-empty list or tuple of these. Got {type(encoder).__name__} instead."
    )


def _flat_children(module: nn.Module) -> list[nn.Module]:
    if type(module) is nn.Sequential:
        return [m for child in module for m in _flat_children(child)]
    return [module]


def stack_encoder(encoder: EncoderLike, *, activation: str = "sigmoid") -> nn.Sequential:
    """One ``nn.Sequential`` computing the code of ``encoder`` (copies of its modules).

    Parameters
    ----------
    encoder : EncoderLike
        An ``nn.Linear``, an :class:`Autoencoder`, an encoder module, or a sequence of these
        (e.g. the list :func:`train_stack` returns), applied in order.
    activation : str
        Put after each bare ``nn.Linear`` (a Linear inside a module keeps its own).

    Returns
    -------
    nn.Sequential
        Independent of ``encoder``: training it leaves the original untouched.

    Examples
    --------
    >>> from contractive import mlp_autoencoder
    >>> stack_encoder([mlp_autoencoder([6, 4]), mlp_autoencoder([4, 3])])
    Sequential(
      (0): Linear(in_features=6, out_features=4, bias=True)
      (1): Sigmoid()
      (2): Linear(in_features=4, out_features=3, bias=True)
      (3): Sigmoid()
    )
    """
    return nn.Sequential(*_layers(encoder, activation))


def module_device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter; the CPU for a module without parameters.

    Parameters
    ----------
    module : nn.Module

    Returns
    -------
    torch.device

    Examples
    --------
    >>> module_device(nn.Linear(2, 2)), module_device(nn.Sigmoid())
    (device(type='cpu'), device(type='cpu'))
    """
    p = next(iter(module.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def encode(
    encoder: EncoderLike,
    X: ArrayLike,
    *,
    batch_size: int = _EVAL_BATCH,
    activation: str = "sigmoid",
) -> Tensor:
    """Codes of ``X`` under ``encoder``, computed in batches without gradients.

    Parameters
    ----------
    encoder : EncoderLike
        See :func:`stack_encoder`.
    X : Tensor or ndarray
        Inputs ``(n, d_x)``.
    batch_size : int
        Rows per forward pass.
    activation : str
        After each bare ``nn.Linear``.

    Returns
    -------
    Tensor
        ``(n, d_h)`` float32 codes on the CPU (flattened for conv encoders).

    Examples
    --------
    >>> import torch
    >>> from contractive import mlp_autoencoder
    >>> encode(mlp_autoencoder([6, 4]), torch.rand(10, 6)).shape
    torch.Size([10, 4])
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    X = as_samples(X, "X")
    net = stack_encoder(encoder, activation=activation).eval()
    device = module_device(net)
    with torch.no_grad():
        parts = [
            net(X[i : i + batch_size].to(device)).flatten(1).cpu()
            for i in range(0, X.shape[0], batch_size)
        ]
    return torch.cat(parts)


# ---------------------------------------------------------------------------------------------
# Greedy stacking.


def train_stack(
    X: ArrayLike,
    configs: Sequence[Config],
    *,
    X_val: ArrayLike | None = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str | None = None,
    on_layer: Callable[[int, Autoencoder, Tensor], None] | None = None,
) -> list[Autoencoder]:
    """Train autoencoders greedily: layer ``k + 1`` learns from the codes of layer ``k``.

    Layer 1 is trained on ``X``; then every input is encoded by it (without gradients) and
    layer 2 is trained on those codes, and so on. Each layer is an MLP autoencoder built from
    its config (``hidden``, ``activation``, ``tied``, ``loss``) and trained by
    :class:`~contractive.train.Trainer` with that config's objective, so a stack of CAEs is
    ``configs = [Config(hidden=[1000]), Config(hidden=[1000])]``. Each layer's weights are
    initialised from ``torch.manual_seed(config.seed)`` without touching the caller's global
    random state, so the result depends on the configs alone.

    Parameters
    ----------
    X : Tensor or ndarray
        Training inputs ``(n, d_x)``; with a ``"bce"`` loss they must lie in [0, 1].
    configs : sequence of Config
        One per layer, bottom first. ``architecture`` must be ``"mlp"``.
    X_val : Tensor or ndarray, optional
        Validation inputs, encoded alongside and passed to each layer's trainer (for its
        validation metrics and ``patience``).
    callbacks : sequence of Callback
        Given to every layer's trainer (e.g. :class:`~contractive.callbacks.EpochLogger`).
    device : torch.device or str, optional
        Defaults to each config's ``device``.
    on_layer : callable, optional
        Called as ``on_layer(k, layer, inputs)`` after layer ``k`` (0-based) is trained, with
        the inputs ``(n, d_k)`` it was trained on.

    Returns
    -------
    list of Autoencoder
        The trained layers, bottom first; pass the list to :func:`finetune` or
        :func:`stack_encoder`.

    Examples
    --------
    >>> import torch
    >>> from contractive.config import Config
    >>> cfgs = [Config(hidden=[8], epochs=1, batch_size=16), Config(hidden=[4], epochs=1)]
    >>> layers = train_stack(torch.rand(32, 12), cfgs)
    >>> [layer.encoder[0].weight.shape for layer in layers]
    [torch.Size([8, 12]), torch.Size([4, 8])]
    """
    from .data import check_unit_interval
    from .runs import build_model

    if isinstance(configs, Config) or not configs:
        raise ConfigError("The 'configs' parameter must be a non-empty sequence of Config.")
    inputs = as_samples(X, "X")
    val = as_samples(X_val, "X_val") if X_val is not None else None
    layers: list[Autoencoder] = []
    for k, config in enumerate(configs):
        if not isinstance(config, Config):
            raise ConfigError(
                f"configs[{k}] must be a Config. Got {type(config).__name__} instead."
            )
        if config.architecture != "mlp":
            raise ConfigError(
                f"configs[{k}]: train_stack stacks MLP layers; the 'architecture' parameter "
                f"must be 'mlp'. Got {config.architecture!r} instead."
            )
        if config.loss == "bce":
            # Sigmoid codes are in [0, 1]; a layer below with another activation may not be.
            check_unit_interval(inputs.numpy(), "X" if k == 0 else f"the codes of layer {k}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = build_model(config, inputs.shape[1], None)
        dev = torch.device(device) if device is not None else resolve_device(config.device)
        Trainer(model, config, callbacks=list(callbacks), device=dev).fit(inputs, val)
        model.eval()
        layers.append(model)
        if on_layer is not None:
            on_layer(k, model, inputs)
        if k + 1 < len(configs):
            inputs = encode(model, inputs)  # (n, d_h_k): the next layer's training data
            val = encode(model, val) if val is not None else None
    return layers
