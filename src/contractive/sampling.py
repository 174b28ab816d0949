"""The CAE sampling chain of Rifai et al. (2012), and the product ``J J^T alpha`` it moves by.

Each step: ``h = f(x)``; ``alpha ~ N(0, sigma^2 I)``; ``x' = g(h + J J^T alpha)``, repeated from
``x'``. ``J J^T alpha = J (J^T alpha)`` is computed with one vector-Jacobian product then one
Jacobian-vector product (in closed form for a single dense layer), so ``J`` is never formed.

What goes wrong without a guard (docs/sampling.md has the measurements): ``J J^T alpha`` is a
first-order move, and where ``J`` is large its norm is 10-30 times the typical one. ``h + J J^T
alpha`` then leaves the code range [0, 1] far behind and decodes to an image with a grey
border and a dark ring, a point the encoder never saw; from there the chain never comes back.
:func:`reconstruction_guard` sets a bound on the squared reconstruction error of a chain state
from the data, and a step whose result exceeds it is refused (the chain stays where it was).
It is off by default: on MNIST it removes the grey-bordered images (1.5 % of the samples) but
lets chains stall in nearly empty dark frames, which reconstruct well (9.6 % of the samples).
:func:`draw_samples` runs many chains with a burn-in and keeps every ``every``-th state;
:func:`classes_visited` measures how the chains mix between classes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .encoders import ArrayLike, ModelLike, as_batch, dense_layer, encoder_parts
from .exceptions import ConfigError
from .nn import Autoencoder
from .penalties import activation_derivative
from .validation import check_int, check_real, parameter_error

__all__ = [
    "DEFAULT_BURN_IN",
    "DEFAULT_EVERY",
    "DEFAULT_SIGMA",
    "DEFAULT_STEPS",
    "classes_visited",
    "draw_samples",
    "jjt_product",
    "reconstruction_guard",
    "sample_chain",
]

#: Default noise scale of :func:`sample_chain` (on the code, before ``J J^T``). Chosen on MNIST
#: (one sigmoid layer of 1000 units, lambda 0.5, 5 epochs): chains wander from digit to digit
#: within 20 steps and stay digit-like; 0.5 barely leaves the start, 2 blurs.
DEFAULT_SIGMA = 1.0
#: Default number of chain steps (``sample_chain``, ``contractive sample``, the report).
DEFAULT_STEPS = 20
#: Default steps before a chain's first kept sample (:func:`draw_samples`): on MNIST a chain
#: changes class within about 50 steps, so its first sample is no longer its starting image.
DEFAULT_BURN_IN = 100
#: Default steps between two kept samples of one chain (:func:`draw_samples`).
DEFAULT_EVERY = 10


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


def _squared_error(model: Autoencoder, x: Tensor) -> Tensor:
    """``||g(f(x)) - x||^2`` per row of ``x`` ``(B, d_x)``: ``(B,)``."""
    return (model.decode(model.encode(x)).reshape(x.shape) - x).pow(2).sum(1)


def reconstruction_guard(
    model: Autoencoder, X: ArrayLike, *, factor: float = 2.0, quantile: float = 0.99
) -> float:
    """A bound on the squared reconstruction error of a chain state, set on data.

    Chain states are decoder outputs, so the reference is the data's reconstructions
    ``r = g(f(x))``: the bound is ``factor`` times the ``quantile`` of ``||g(f(r)) - r||^2``
    over the rows of ``X``. Off-manifold states (the grey-bordered images a runaway step
    decodes to) exceed it several times over; on MNIST about 8 % of one-layer CAE steps at
    sigma = 1 are refused (docs/sampling.md). Nearly empty dark images reconstruct well and
    pass it, so guarded chains can stall in them.

    Parameters
    ----------
    model : Autoencoder
        The trained model.
    X : Tensor or np.ndarray
        Data ``(n, n_features)`` in the model's input scale, e.g. 2000 training images.
    factor : float
        Multiple of the quantile, > 0.
    quantile : float
        In (0, 1].

    Returns
    -------
    float
        The bound, to pass as ``max_error`` to :func:`sample_chain` or :func:`draw_samples`.

    Examples
    --------
    >>> import torch
    >>> from contractive.nn import mlp_autoencoder
    >>> bound = reconstruction_guard(mlp_autoencoder([6, 4]), torch.rand(50, 6))
    >>> bound > 0
    True
    """
    factor = check_real("factor", factor, low=0, closed="neither", owner="reconstruction_guard")
    quantile = check_real("quantile", quantile, low=0, high=1, closed="right")
    x = as_batch(X, model.encoder, name="X").flatten(1)
    with torch.no_grad():
        r = model.decode(model.encode(x)).reshape(x.shape)
        errors = _squared_error(model, r)
    return factor * float(torch.quantile(errors.double(), quantile))


class _Chain:
    """The chain's step, with its noise generator and the count of refused steps."""

    def __init__(
        self, model: Autoencoder, sigma: float, seed: int, max_error: float | None, owner: str
    ) -> None:
        if not isinstance(model, Autoencoder):
            raise ConfigError(
                f"The 'model' parameter of {owner} must be an Autoencoder (the chain needs "
                f"the decoder). Got {type(model).__name__} instead."
            )
        self.model = model
        self.sigma = check_real("sigma", sigma, low=0)
        self.max_error = (
            None
            if max_error is None
            else check_real("max_error", max_error, low=0, closed="neither")
        )
        self.gen = torch.Generator().manual_seed(check_int("seed", seed, low=0))
        self.code_tail: torch.Size | None = None  # the code's shape past the batch axis
        self.steps = 0
        self.refused = 0

    def step(self, x: Tensor) -> Tensor:
        """One move of every chain: ``x`` ``(n_chains, n_features)`` to the next states."""
        encoder, model = self.model.encoder, self.model
        with torch.no_grad():
            if self.code_tail is None:  # one forward pass of one sample, once per chain
                self.code_tail = encoder(model.prepare(x[:1])).shape[1:]
            alpha = self.sigma * torch.randn((x.shape[0], *self.code_tail), generator=self.gen)
            h, jjt = _code_and_jjt(encoder, model.prepare(x), alpha.to(x))  # (n_chains, *code)
            proposal = model.decode(h + jjt).reshape(x.shape[0], -1)  # (n_chains, n_features)
            self.steps += x.shape[0]
            if self.max_error is None:
                return proposal
            keep = _squared_error(model, proposal) <= self.max_error  # (n_chains,)
            self.refused += int((~keep).sum())
            return torch.where(keep[:, None], proposal, x)


def sample_chain(
    model: Autoencoder,
    x0: ArrayLike,
    *,
    sigma: float = DEFAULT_SIGMA,
    steps: int = DEFAULT_STEPS,
    seed: int = 0,
    max_error: float | None = None,
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
    max_error : float, optional
        Refuse a step whose result has a squared reconstruction error above this (the chain
        stays); see :func:`reconstruction_guard`. None: every step is taken, as published.

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
    chain_step = _Chain(model, sigma, seed, max_error, "sample_chain")
    steps = check_int("steps", steps, low=1)
    x = as_batch(x0, model.encoder, name="x0").flatten(1)  # (n_chains, n_features)
    chain = [x.cpu().float()]
    for _ in range(steps):
        x = chain_step.step(x)
        chain.append(x.cpu().float())
    return torch.stack(chain).numpy()


def draw_samples(
    model: Autoencoder,
    starts: ArrayLike,
    *,
    per_chain: int = 1,
    sigma: float = DEFAULT_SIGMA,
    burn_in: int = DEFAULT_BURN_IN,
    every: int = DEFAULT_EVERY,
    seed: int = 0,
    max_error: float | None = None,
    batch_size: int = 1000,
    progress: bool = False,
) -> tuple[np.ndarray, float]:
    """Samples of the chain: one chain per start, ``per_chain`` states kept from each.

    A chain's kept states are those after steps ``burn_in``, ``burn_in + every``, ...,
    ``burn_in + (per_chain - 1) * every``. Chains run ``batch_size`` at a time, and only kept
    states are stored, so memory does not grow with the number of steps.

    Parameters
    ----------
    model : Autoencoder
        The trained model.
    starts : Tensor or np.ndarray
        ``(n_chains, n_features)`` starting points (training images, or noise).
    per_chain : int
        States kept per chain, >= 1.
    sigma : float
        Standard deviation of the code-space noise ``alpha``.
    burn_in : int
        Steps before the first kept state, >= 1.
    every : int
        Steps between kept states of one chain, >= 1.
    seed : int
        Seed of the noise; chain batch ``b`` uses ``seed + b``.
    max_error : float, optional
        As for :func:`sample_chain`.
    batch_size : int
        Chains run together.
    progress : bool
        Show a tqdm progress bar over chain steps.

    Returns
    -------
    samples : np.ndarray
        ``(n_chains * per_chain, n_features)`` float32, chain by chain.
    refused : float
        The fraction of steps refused by ``max_error`` (0 without it).

    Examples
    --------
    >>> import torch
    >>> from contractive.nn import mlp_autoencoder
    >>> samples, refused = draw_samples(mlp_autoencoder([6, 4]), torch.rand(5, 6), per_chain=2,
    ...                                 burn_in=3, every=2)
    >>> samples.shape, refused
    ((10, 6), 0.0)
    """
    per_chain = check_int("per_chain", per_chain, low=1)
    burn_in = check_int("burn_in", burn_in, low=1)
    every = check_int("every", every, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    seed = check_int("seed", seed, low=0)
    _Chain(model, sigma, seed, max_error, "draw_samples")  # checks model, sigma and max_error
    x_all = as_batch(starts, model.encoder, name="starts").flatten(1)  # (n_chains, n_features)
    n_chains = x_all.shape[0]
    n_steps = burn_in + (per_chain - 1) * every
    kept = np.empty((n_chains, per_chain, x_all.shape[1]), dtype=np.float32)
    steps = refused = 0
    from tqdm.auto import tqdm

    with tqdm(total=n_chains * n_steps, disable=not progress, unit="step", desc="sampling") as bar:
        for b, start in enumerate(range(0, n_chains, batch_size)):
            chain_step = _Chain(model, sigma, seed + b, max_error, "draw_samples")
            x = x_all[start : start + batch_size]
            for t in range(1, n_steps + 1):
                x = chain_step.step(x)
                if t >= burn_in and (t - burn_in) % every == 0:
                    kept[start : start + x.shape[0], (t - burn_in) // every] = x.cpu().numpy()
                bar.update(x.shape[0])
            steps += chain_step.steps
            refused += chain_step.refused
    return kept.reshape(n_chains * per_chain, -1), refused / steps


def classes_visited(labels: np.ndarray) -> np.ndarray:
    """How many distinct classes each chain visits.

    Parameters
    ----------
    labels : np.ndarray
        ``(steps, n_chains)`` predicted class of each chain state.

    Returns
    -------
    np.ndarray
        ``(n_chains,)`` int.

    Examples
    --------
    >>> import numpy as np
    >>> classes_visited(np.array([[3, 1], [3, 1], [7, 1], [3, 2]]))
    array([2, 2])
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise parameter_error("labels", "a 2-D array (steps, n_chains)", f"shape {labels.shape}")
    return np.array([len(np.unique(labels[:, j])) for j in range(labels.shape[1])])
