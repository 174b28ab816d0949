"""How the analysis reads a model: its encoder, a batch of points for it, a dense layer.

:mod:`contractive.analysis` and :mod:`contractive.sampling` take an :class:`Autoencoder` or a
bare encoder module, and points as a Tensor or a numpy array; the helpers here turn both into
what the Jacobian computations need.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor, nn

from .exceptions import ConfigError
from .nn import Autoencoder
from .penalties import activation_derivative, flatten_sequential

__all__ = ["ArrayLike", "ModelLike", "as_batch", "dense_layer", "encoder_parts", "to_tensor"]

#: A model the analysis reads: an autoencoder, or an encoder module.
ModelLike = Autoencoder | nn.Module
#: Points: a Tensor or a numpy array.
ArrayLike = Tensor | np.ndarray


def encoder_parts(model: ModelLike) -> tuple[nn.Module, Callable[[Tensor], Tensor]]:
    """The encoder and the function that reshapes a batch for it.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        An autoencoder (its encoder and ``prepare``), or an encoder (taken as it is).

    Returns
    -------
    encoder : nn.Module
    prepare : callable
        Maps a batch of flat rows to the encoder's input shape (the identity for an encoder).

    Examples
    --------
    >>> from contractive.nn import mlp_autoencoder
    >>> encoder, prepare = encoder_parts(mlp_autoencoder([6, 4]))
    >>> encoder
    Sequential(
      (0): Linear(in_features=6, out_features=4, bias=True)
      (1): Sigmoid()
    )
    >>> encoder_parts(3)
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'model' parameter must be an Autoencoder or an
    encoder nn.Module. Got int instead.
    """
    if isinstance(model, Autoencoder):
        return model.encoder, model.prepare
    if not isinstance(model, nn.Module):
        raise ConfigError(
            "The 'model' parameter must be an Autoencoder or an encoder nn.Module. "
            f"Got {type(model).__name__} instead."
        )
    return model, lambda x: x


def _reference(module: nn.Module) -> Tensor | None:
    return next(iter(module.parameters()), None)


def to_tensor(x: object, name: str) -> Tensor:
    """``x`` as a Tensor: a numpy array becomes float32 (without a copy when it can); anything
    else but a Tensor is refused, naming the parameter.

    Examples
    --------
    >>> to_tensor(np.zeros((2, 3), dtype=np.float64), "X").dtype
    torch.float32
    >>> to_tensor([1, 2], "X")
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'X' parameter must be a Tensor or a numpy array.
    Got list instead.
    """
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    if not isinstance(x, Tensor):
        raise ConfigError(
            f"The '{name}' parameter must be a Tensor or a numpy array. "
            f"Got {type(x).__name__} instead."
        )
    return x


def as_batch(x: ArrayLike, module: nn.Module, *, name: str = "x") -> Tensor:
    """``x`` as a float tensor on the module's device and in its dtype, with a batch axis.

    Parameters
    ----------
    x : Tensor or np.ndarray
        A batch ``(n_samples, ...)`` with at least one sample.
    module : nn.Module
        Its first parameter gives the device and dtype (none: ``x`` is left where it is).
    name : str
        The parameter's name, for the message of a refusal.

    Returns
    -------
    Tensor
        Detached.

    Examples
    --------
    >>> import torch
    >>> as_batch(np.zeros((2, 3)), torch.nn.Linear(3, 1).double()).dtype
    torch.float64
    >>> as_batch(np.zeros(3), torch.nn.Linear(3, 1))
    Traceback (most recent call last):
        ...
    contractive.exceptions.ConfigError: The 'x' parameter must be a batch (n_samples, ...) with
    at least one sample. Got shape (3,) instead.
    """
    x = to_tensor(x, name)
    if x.dim() < 2 or x.shape[0] == 0:
        raise ConfigError(
            f"The '{name}' parameter must be a batch (n_samples, ...) with at least one sample. "
            f"Got shape {tuple(x.shape)} instead."
        )
    ref = _reference(module)
    if ref is not None:
        x = x.to(device=ref.device, dtype=ref.dtype)
    return x.detach()


def dense_layer(encoder: nn.Module) -> tuple[nn.Linear, nn.Module | None] | None:
    """``(linear, activation)`` when the encoder is exactly Linear [+ elementwise activation].

    Such an encoder's Jacobian is ``diag(s'(a)) W``, which the analysis uses without autograd.

    Parameters
    ----------
    encoder : nn.Module

    Returns
    -------
    tuple or None
        The Linear layer and its activation (None: no activation); None for any other encoder
        (or an activation whose derivative is not known).

    Examples
    --------
    >>> from torch import nn
    >>> dense_layer(nn.Sequential(nn.Linear(3, 2), nn.Tanh()))
    (Linear(in_features=3, out_features=2, bias=True), Tanh())
    >>> dense_layer(nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 2))) is None
    True
    """
    modules = list(flatten_sequential(encoder))
    if not modules or type(modules[0]) is not nn.Linear or len(modules) > 2:
        return None
    linear = modules[0]
    assert isinstance(linear, nn.Linear)
    if len(modules) == 1:
        return linear, None
    act = modules[1]
    return (linear, act) if activation_derivative(act) is not None else None
