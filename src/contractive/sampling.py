"""The CAE sampling chain of Rifai et al. (2012), and the product ``J J^T alpha`` it moves by.

Each step: ``h = f(x)``; ``alpha ~ N(0, sigma^2 I)``; ``x' = g(h + J J^T alpha)``, repeated from
``x'``. ``J J^T alpha = J (J^T alpha)`` is computed with one vector-Jacobian product then one
Jacobian-vector product (in closed form for a single dense layer), so ``J`` is never formed.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .encoders import ArrayLike, ModelLike, as_batch, dense_layer, encoder_parts
from .exceptions import ConfigError
from .nn import Autoencoder
from .penalties import activation_derivative
from .validation import check_int, check_real

__all__ = ["DEFAULT_SIGMA", "DEFAULT_STEPS", "jjt_product", "sample_chain"]

#: Default noise scale of :func:`sample_chain` (on the code, before ``J J^T``). Chosen on MNIST
#: (one sigmoid layer of 1000 units, lambda 0.5, 5 epochs): chains wander from digit to digit
#: within 20 steps and stay digit-like; 0.5 barely leaves the start, 2 blurs.
DEFAULT_SIGMA = 1.0
#: Default number of chain steps (``sample_chain``, ``contractive sample``, the report).
DEFAULT_STEPS = 20


def _code_and_jjt(encoder: nn.Module, x: Tensor, alpha: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(x), J J^T alpha)`` per sample; ``alpha`` is shaped like the code."""
    dense = dense_layer(encoder)
    if dense is not None and x.dim() == 2:
        linear, act = dense
        weight = linear.weight  # (d_h, d_x)
        a = linear(x)  # (B, d_h)
        if act is None:
            return a, (alpha @ weight) @ weight.t()
        h = act(a)
        deriv = activation_derivative(act)
        assert deriv is not None
        s = deriv(act, a, h)  # (B, d_h)
        jt_alpha = (s * alpha) @ weight  # (B, d_x): J^T alpha
        return h, s * (jt_alpha @ weight.t())  # (B, d_h): J (J^T alpha)
    from torch.func import jvp, vjp

    # Samples do not interact, so batched products give each sample's own J_b J_b^T alpha_b.
    pulled = vjp(encoder, x)  # (f(x), pullback)
    h = pulled[0]
    (jt_alpha,) = pulled[1](alpha.reshape(h.shape))  # (B, *input)
    jjt = jvp(encoder, (x,), (jt_alpha,))[1]  # (B, *code)
    return h, jjt


def jjt_product(model: ModelLike, x: ArrayLike, alpha: ArrayLike) -> Tensor:
    """``J_f(x) J_f(x)^T alpha`` per sample, without forming ``J``.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        The encoder.
    x : Tensor or np.ndarray
        Points ``(B, ...)``.
    alpha : Tensor or np.ndarray
        Code-space vectors, shaped like the code ``f(x)`` (``(B, d_h)`` for an MLP).

    Returns
    -------
    Tensor
        Shaped like the code, detached.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(2, 2, bias=False)
    >>> _ = enc.weight.data.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
    >>> jjt_product(enc, torch.rand(1, 2), torch.ones(1, 2))
    tensor([[4., 1.]])
    """
    encoder, prepare = encoder_parts(model)
    xb = prepare(as_batch(x, encoder))
    ab = as_batch(alpha, encoder, name="alpha")
    with torch.no_grad():
        return _code_and_jjt(encoder, xb, ab)[1].detach()


def sample_chain(
    model: Autoencoder,
    x0: ArrayLike,
    *,
    sigma: float = DEFAULT_SIGMA,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
) -> np.ndarray:
    """Run the CAE sampling chain of Rifai et al. (2012) from each starting point.

    Each step: ``h = f(x)``; ``alpha ~ N(0, sigma^2 I)`` (shaped like ``h``);
    ``x <- g(h + J J^T alpha)``, where ``g`` includes the output activation.

    Parameters
    ----------
    model : Autoencoder
        The trained model (encoder and decoder).
    x0 : Tensor or np.ndarray
        Starting points ``(n_chains, n_features)``, as the model's input.
    sigma : float
        Standard deviation of ``alpha``, in [0, inf); 0 repeats the reconstruction map.
    steps : int
        Number of steps, at least 1.
    seed : int
        Seed of the ``torch.Generator`` that draws ``alpha``; equal seeds give equal chains.

    Returns
    -------
    np.ndarray
        ``(steps + 1, n_chains, n_features)`` float32; index 0 holds ``x0``.

    Examples
    --------
    >>> import torch
    >>> from contractive.nn import mlp_autoencoder
    >>> model = mlp_autoencoder([6, 4])
    >>> sample_chain(model, torch.rand(3, 6), sigma=0.1, steps=5).shape
    (6, 3, 6)
    """
    if not isinstance(model, Autoencoder):
        raise ConfigError(
            "The 'model' parameter of sample_chain must be an Autoencoder (the chain needs "
            f"the decoder). Got {type(model).__name__} instead."
        )
    sigma = check_real("sigma", sigma, low=0)
    steps = check_int("steps", steps, low=1)
    seed = check_int("seed", seed, low=0)
    encoder = model.encoder
    x = as_batch(x0, encoder, name="x0").flatten(1)  # (n_chains, n_features)
    gen = torch.Generator().manual_seed(seed)
    chain = [x.cpu().float()]
    with torch.no_grad():
        code_shape = encoder(model.prepare(x)).shape
        for _ in range(steps):
            alpha = sigma * torch.randn(code_shape, generator=gen)
            h, jjt = _code_and_jjt(encoder, model.prepare(x), alpha.to(x))
            x = model.decode(h + jjt).reshape(x.shape[0], -1)  # (n_chains, n_features)
            chain.append(x.cpu().float())
    return torch.stack(chain).numpy()
