"""What a trained encoder learned: Jacobian norms, saturation, contraction, spectrum, sampling.

Every function takes either an :class:`~contractive.nn.Autoencoder` (its ``prepare`` reshapes
flat input for conv encoders, so ``x`` can always be given as ``(B, n_features)``) or a plain
encoder module (``x`` is then given in the shape the module takes). Jacobians are taken with
respect to the flattened input and flattened code: ``J_f(x)`` has shape ``(d_h, d_x)`` with
``d_h`` = number of code values and ``d_x`` = number of input values of one sample.

How the Jacobian is obtained
    For an encoder that is exactly ``nn.Linear`` or ``nn.Sequential(nn.Linear, activation)``
    with an elementwise activation of known derivative, ``J = diag(s'(a)) W`` is built from
    ``s'(a)`` and ``W`` directly. Any other encoder (conv, deep, user-built) gets the exact
    per-sample Jacobian from :mod:`torch.func`. Either way the result is exact.

Definitions (ours, stated because the paper's table does not say how it normalised)
    ``mean ||J_f(x)||_F``
        The Frobenius norm of each sample's Jacobian, averaged over the samples; no other
        normalisation (not divided by ``d_h`` or ``d_x``, not squared).
    ``SAT``
        The fraction of (sample, code unit) pairs whose activation is saturated: ``h < 0.05``
        or ``h > 0.95`` for a sigmoid code; ``|h| > 0.9`` for a tanh code (the same thresholds,
        since ``tanh(a / 2) = 2 sigmoid(a) - 1`` maps 0.05 and 0.95 to -0.9 and 0.9). Every
        sample has the same number of units, so this is also the per-sample fraction averaged
        over samples, as in Rifai et al. (2011). Undefined (``None``) for unbounded codes.
    contraction ratio at radius ``r``
        For each point ``x0``, one direction ``u`` uniform on the unit sphere (a Gaussian
        vector normalised; the same ``u`` at every radius, so the curve is smooth and a linear
        encoder gives exactly the same ratio at every ``r``), ``x1 = x0 + r u`` and the ratio
        ``||f(x1) - f(x0)|| / ||x1 - x0||``, averaged over the points. Computed in float64 so
        that small radii are not lost in rounding. By default 21 radii from 1e-3 to 100 times
        the median distance between two points: far enough for a bounded code to saturate,
        where the ratio falls like ``1 / r`` (see :func:`default_radii`); such ``x1`` leave
        the data's range, which the ratio does not need.
    spectrum
        The singular values of each sample's Jacobian, sorted in decreasing order, averaged
        index by index over the samples. Obtained as the square roots of the eigenvalues of the
        smaller Gram matrix (``J J^T`` or ``J^T J``) in float64: half the time of an SVD on the
        CPU for 1000 x 784 Jacobians (0.06 s against 0.12 s on one core), exact to ~1e-8 of
        the largest value.

Sampling (Rifai, Bengio, Dauphin and Vincent, ICML 2012)
    ``h = f(x)``; ``alpha ~ N(0, sigma^2 I)``; ``x' = g(h + J J^T alpha)``, repeated from
    ``x'``. ``J J^T alpha = J (J^T alpha)`` is computed with one vector-Jacobian product then one
    Jacobian-vector product (no Jacobian tensor); for one ``Linear`` + activation layer it is
    ``s' * (W (W^T (s' * alpha)))``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from .encoders import ArrayLike, ModelLike, as_batch, dense_layer, encoder_parts
from .penalties import (
    activation_derivative,
    analytic_supported,
    exact_jacobian,
    flatten_sequential,
    jacobian_penalty,
)
from .sampling import DEFAULT_SIGMA, DEFAULT_STEPS, jjt_product, sample_chain
from .validation import check_int, parameter_error

__all__ = [
    "DEFAULT_SIGMA",
    "DEFAULT_STEPS",
    "SPECTRUM_FRACTION",
    "Analysis",
    "ContractionCurve",
    "Tangents",
    "analyze",
    "code_activation",
    "contraction_ratio",
    "default_radii",
    "encoder_jacobian",
    "jacobian_norms",
    "jacobian_spectrum",
    "jjt_product",
    "mean_jacobian_norm",
    "sample_chain",
    "saturation",
    "singular_values",
    "tangent_directions",
]

#: A singular value counts as significant above this fraction of the largest one.
SPECTRUM_FRACTION = 0.1


# The default radii span 10^-3 to 10^2 times the median distance between two points: from the
# Jacobian's own scale to far into saturation (see default_radii).
_RADII_DECADES = (-3.0, 2.0)

# Bounded code activations: how SAT reads each (see the module docstring).
_SAT_LOW, _SAT_HIGH = 0.05, 0.95
_TANH_SAT = 0.9


# ---------------------------------------------------------------------------------------------
# Helpers: inputs, encoder structure, argument checks.


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


@contextlib.contextmanager
def _lapack_threads(like: Tensor) -> Iterator[None]:
    """One intra-op thread for CPU eigen/SVD calls on ~1000 x 1000 matrices.

    Measured on the 2-core machine this library is developed on, with other jobs running:
    ``eigvalsh`` of a 784 x 784 float64 matrix took 0.05 s with one thread and 4 to 8 s with
    two, each thread waiting at every barrier for a core. One thread gives up at most the
    parallel speed-up of an idle machine. The setting is process-wide, so it is restored at once.
    """
    if like.device.type != "cpu":
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


# ---------------------------------------------------------------------------------------------
# Jacobians and their norms.


def encoder_jacobian(model: ModelLike, x: ArrayLike) -> Tensor:
    """Per-sample Jacobians of the encoder, ``(B, d_h, d_x)``, exact.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        An autoencoder (its encoder is used, after ``prepare``) or an encoder module.
    x : Tensor or np.ndarray
        A batch ``(B, ...)``: ``(B, n_features)`` for an autoencoder, or the encoder's own
        input shape.

    Returns
    -------
    Tensor
        ``J[b] = d f(x_b) / d x_b`` with code and input flattened, detached. For one
        ``Linear`` + elementwise activation it is built as ``s'(a)[:, None] * W``; otherwise it
        comes from :mod:`torch.func` (chunked to bound memory).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Sequential(nn.Linear(5, 3), nn.Sigmoid())
    >>> encoder_jacobian(enc, torch.rand(4, 5)).shape
    torch.Size([4, 3, 5])
    """
    encoder, prepare = encoder_parts(model)
    xb = prepare(as_batch(x, encoder))
    dense = dense_layer(encoder)
    with torch.no_grad():
        if dense is not None and xb.dim() == 2:
            linear, act = dense
            weight = linear.weight  # (d_h, d_x)
            if act is None:
                return weight.expand(xb.shape[0], -1, -1).clone()
            a = linear(xb)  # (B, d_h)
            deriv = activation_derivative(act)
            assert deriv is not None
            s = deriv(act, a, act(a))  # (B, d_h): s'(a)
            return s[:, :, None] * weight[None]  # (B, d_h, d_x)
        jac, _ = exact_jacobian(encoder, xb)
    return jac.detach()


def jacobian_norms(model: ModelLike, x: ArrayLike) -> Tensor:
    """Per-sample Frobenius norms ``||J_f(x_b)||_F``, shape ``(B,)``.

    Uses the closed form ``sqrt(sum_i s'(a_i)^2 ||W_i||^2)`` (no Jacobian built) for one
    affine layer + elementwise activation, the exact Jacobian otherwise.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(3, 2, bias=False)
    >>> _ = enc.weight.data.fill_(1.0)
    >>> jacobian_norms(enc, torch.zeros(2, 3))
    tensor([2.4495, 2.4495])
    """
    encoder, prepare = encoder_parts(model)
    xb = prepare(as_batch(x, encoder))
    method = "analytic" if analytic_supported(encoder) else "exact"
    with torch.no_grad():
        return jacobian_penalty(encoder, xb, method=method).detach().sqrt()


def mean_jacobian_norm(model: ModelLike, X: ArrayLike, *, batch_size: int = 256) -> float:
    """Mean over samples of ``||J_f(x)||_F`` (per-sample norm, no other normalisation).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(3, 2, bias=False)
    >>> _ = enc.weight.data.fill_(1.0)
    >>> round(mean_jacobian_norm(enc, torch.rand(10, 3)), 4)  # sqrt(6)
    2.4495
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    encoder, _ = encoder_parts(model)
    xb = as_batch(X, encoder, name="X")
    total = 0.0
    for part in _chunks(xb.shape[0], batch_size):
        total += float(jacobian_norms(model, xb[part]).double().sum())
    return total / xb.shape[0]


def code_activation(model: ModelLike) -> nn.Module | None:
    """The module that produces the code: the encoder's last module (nested Sequentials opened).

    Its type decides how :func:`saturation` reads the code (``None`` for an empty encoder).

    Examples
    --------
    >>> from torch import nn
    >>> from contractive.nn import mlp_autoencoder
    >>> code_activation(mlp_autoencoder([6, 4], activation="tanh"))
    Tanh()
    >>> code_activation(nn.Sequential(nn.Linear(4, 3), nn.ReLU()))
    ReLU()
    """
    encoder, _ = encoder_parts(model)
    modules = list(flatten_sequential(encoder))
    return modules[-1] if modules else None


def saturation(model: ModelLike, X: ArrayLike, *, batch_size: int = 1024) -> float | None:
    """SAT: the fraction of code units that are saturated, over all samples.

    Sigmoid code: ``h < 0.05`` or ``h > 0.95``. Tanh code: ``|h| > 0.9`` (the same relative
    thresholds). Any other code activation is unbounded or has no such convention, and the
    result is ``None``.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        The code is the output of the encoder's last module, which decides the thresholds.
    X : Tensor or np.ndarray
        Samples ``(n, ...)``.
    batch_size : int
        Samples encoded at a time.

    Returns
    -------
    float or None
        In [0, 1]; ``None`` for a code activation other than ``nn.Sigmoid`` / ``nn.Tanh``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())
    >>> _ = enc[0].bias.data.fill_(20.0)  # every unit near 1
    >>> saturation(enc, torch.rand(8, 4))
    1.0
    >>> saturation(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), torch.rand(8, 4)) is None
    True
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    encoder, prepare = encoder_parts(model)
    act = code_activation(encoder)
    if type(act) not in (nn.Sigmoid, nn.Tanh):
        return None
    xb = as_batch(X, encoder, name="X")
    hits, count = 0, 0
    with torch.no_grad():
        for part in _chunks(xb.shape[0], batch_size):
            h = encoder(prepare(xb[part]))
            sat = h.abs() > _TANH_SAT if type(act) is nn.Tanh else (h < _SAT_LOW) | (h > _SAT_HIGH)
            hits += int(sat.sum())
            count += sat.numel()
    return hits / count


# ---------------------------------------------------------------------------------------------
# Contraction ratio.


class ContractionCurve(NamedTuple):
    """Mean contraction ratio at each radius.

    Attributes
    ----------
    radii : np.ndarray
        ``(n_radii,)`` distances ``r = ||x1 - x0||``, increasing.
    ratio : np.ndarray
        ``(n_radii,)`` mean of ``||f(x1) - f(x0)|| / r`` over the points.
    """

    radii: np.ndarray
    ratio: np.ndarray


def default_radii(X: ArrayLike, *, n: int = 21, max_points: int = 256) -> np.ndarray:
    """``n`` log-spaced radii from 1e-3 to 100 times the median distance between two points.

    Scaling by the data's own distances gives curves that cover the same ground whatever the
    input scale: from "infinitesimal", where the ratio is the Jacobian's gain along a random
    direction, through "as far as another sample" (1 times the median distance), to 100 times
    further, where the encoder saturates. A code bounded in a box (sigmoid units in (0, 1))
    moves by at most ``sqrt(d_h)`` however far ``x1`` goes, so beyond the data's own scale the
    ratio must fall, eventually like ``1 / r``: the curve shows both regimes. On MNIST in
    [0, 1] the radii run from about 0.01 to 1000 (the median distance is about 10); a CAE's
    curve is flat up to about the median distance, then falls, like ``1 / r`` from about 30
    times it (``docs/analysis.md``). Points
    ``x1`` that far away leave the data's range ([0, 1] for images); the ratio is defined for
    any input, and that is what it measures there.

    Parameters
    ----------
    X : Tensor or np.ndarray
        Samples ``(n_samples, ...)``; at most ``max_points`` of them (the first) are used.
    n : int
        Number of radii; the default 21 gives four per decade, with 1, 10 and 100 times the
        median distance among them.
    max_points : int
        Bound on the points whose pairwise distances are measured.

    Examples
    --------
    >>> import numpy as np
    >>> r = default_radii(np.eye(4))  # every pairwise distance is sqrt(2)
    >>> r.shape, bool(np.isclose(r[12], np.sqrt(2))), bool(np.isclose(r[-1], 100 * np.sqrt(2)))
    ((21,), True, True)
    """
    n = check_int("n", n, low=1)
    x = as_batch(X, nn.Identity(), name="X")[:max_points].flatten(1).double()
    d = torch.cdist(x, x)
    iu = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
    pairs = d[iu[0], iu[1]]
    pairs = pairs[pairs > 0]
    scale = float(pairs.median()) if pairs.numel() else 1.0
    return scale * np.logspace(_RADII_DECADES[0], _RADII_DECADES[1], n)


def contraction_ratio(
    model: ModelLike,
    X: ArrayLike,
    radii: Sequence[float] | np.ndarray | None = None,
    *,
    seed: int = 0,
    batch_size: int = 256,
) -> ContractionCurve:
    """Mean ``||f(x1) - f(x0)|| / ||x1 - x0||`` with ``x1`` on the sphere of radius ``r``.

    One direction per point, uniform on the unit sphere (a Gaussian vector normalised, from a
    ``torch.Generator`` seeded with ``seed``), reused at every radius. Evaluated in float64.
    ``x1`` is not clipped to the data's range: at large radii it leaves it (an image's
    [0, 1]), and the ratio measures the encoder there, where a bounded code saturates.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        The encoder ``f``.
    X : Tensor or np.ndarray
        The centres ``x0``, ``(n, ...)``.
    radii : sequence of float, optional
        Positive radii; by default :func:`default_radii` of ``X``.
    seed : int
        Seed of the directions.
    batch_size : int
        Points per forward pass.

    Returns
    -------
    ContractionCurve
        ``radii`` and the mean ratio at each.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(4, 4, bias=False)
    >>> _ = enc.weight.data.copy_(0.5 * torch.eye(4))
    >>> contraction_ratio(enc, torch.rand(6, 4), [0.1, 1.0]).ratio
    array([0.5, 0.5])
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    seed = check_int("seed", seed, low=0)
    encoder, prepare = encoder_parts(model)
    x0 = as_batch(X, encoder, name="X")
    r = default_radii(x0) if radii is None else np.asarray(radii, dtype=np.float64)
    if r.ndim != 1 or r.size == 0 or not np.all(np.isfinite(r)) or np.any(r <= 0):
        raise parameter_error(
            "radii", "a non-empty 1-D sequence of positive finite numbers", r.tolist()
        )
    from torch.func import functional_call

    # float64 copies of the weights: at r = 1e-3 the code moves by ~1e-5, which float32
    # differences of codes near 0.5 would blur.
    state = {
        name: t.detach().double() if t.is_floating_point() else t
        for name, t in (*encoder.named_parameters(), *encoder.named_buffers())
    }

    def f(z: Tensor) -> Tensor:
        return functional_call(encoder, state, (prepare(z),)).flatten(1)  # (b, d_h)

    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(x0.shape, generator=gen, dtype=torch.float64).to(x0.device)
    u = u / torch.linalg.vector_norm(u.flatten(1), dim=1).reshape(-1, *([1] * (u.dim() - 1)))
    sums = np.zeros(r.size)
    with torch.no_grad():
        for part in _chunks(x0.shape[0], batch_size):
            xs = x0[part].double()
            h0 = f(xs)
            for k, radius in enumerate(r):
                dh = f(xs + float(radius) * u[part]) - h0  # (b, d_h)
                sums[k] += float(torch.linalg.vector_norm(dh, dim=1).sum()) / float(radius)
    return ContractionCurve(r.copy(), sums / x0.shape[0])


# ---------------------------------------------------------------------------------------------
# Spectrum and tangents.


def singular_values(model: ModelLike, x: ArrayLike) -> Tensor:
    """Singular values of each sample's Jacobian, decreasing: ``(B, min(d_h, d_x))``, float64.

    Square roots of the eigenvalues of the smaller Gram matrix of ``J`` (see the module
    docstring for why not an SVD).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(3, 2, bias=False)
    >>> _ = enc.weight.data.copy_(torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    >>> singular_values(enc, torch.rand(1, 3))
    tensor([[3., 2.]], dtype=torch.float64)
    """
    jac = encoder_jacobian(model, x).double()  # (B, d_h, d_x)
    jt = jac.transpose(1, 2)
    gram = jac @ jt if jac.shape[1] <= jac.shape[2] else jt @ jac  # (B, k, k), k = min
    with _lapack_threads(gram):
        eig = torch.linalg.eigvalsh(gram)  # ascending
    return eig.clamp(min=0.0).sqrt().flip(-1)


def jacobian_spectrum(model: ModelLike, X: ArrayLike, *, batch_size: int = 32) -> np.ndarray:
    """Sorted singular values of ``J_f(x)``, averaged index by index over the samples.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        The encoder.
    X : Tensor or np.ndarray
        Samples ``(n, ...)``.
    batch_size : int
        Jacobians held at once (``batch_size * d_h * d_x`` floats).

    Returns
    -------
    np.ndarray
        ``(min(d_h, d_x),)`` float64, decreasing.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(3, 2, bias=False)
    >>> _ = enc.weight.data.copy_(torch.tensor([[3.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    >>> jacobian_spectrum(enc, torch.rand(5, 3))
    array([3., 2.])
    """
    batch_size = check_int("batch_size", batch_size, low=1)
    encoder, _ = encoder_parts(model)
    xb = as_batch(X, encoder, name="X")
    total: Tensor | None = None
    for part in _chunks(xb.shape[0], batch_size):
        s = singular_values(model, xb[part]).sum(dim=0)
        total = s if total is None else total + s
    assert total is not None
    return (total / xb.shape[0]).cpu().numpy()


class Tangents(NamedTuple):
    """Leading singular values and right singular vectors of ``J_f(x)`` per sample.

    Attributes
    ----------
    values : Tensor
        ``(B, k)`` float64, decreasing.
    vectors : Tensor
        ``(B, k, d_x)`` float64, unit norm: the input directions along which the code changes
        most. Each sign is fixed so that the entry of largest magnitude is positive.
    """

    values: Tensor
    vectors: Tensor


def tangent_directions(model: ModelLike, x: ArrayLike, *, k: int = 5) -> Tangents:
    """The ``k`` leading right singular vectors of ``J_f(x)``: the local tangent directions.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        The encoder.
    x : Tensor or np.ndarray
        Points ``(B, ...)`` (a few: this is a full SVD per point).
    k : int
        Number of directions, at most ``min(d_h, d_x)``.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(3, 2, bias=False)
    >>> _ = enc.weight.data.copy_(torch.tensor([[0.0, 3.0, 0.0], [0.0, 0.0, -2.0]]))
    >>> t = tangent_directions(enc, torch.rand(1, 3), k=2)
    >>> t.values
    tensor([[3., 2.]], dtype=torch.float64)
    >>> t.vectors[0].abs()  # the input axes that W reads, strongest first
    tensor([[0., 1., 0.],
            [0., 0., 1.]], dtype=torch.float64)
    """
    k = check_int("k", k, low=1)
    jac = encoder_jacobian(model, x).double()  # (B, d_h, d_x)
    rank = min(jac.shape[1], jac.shape[2])
    if k > rank:
        raise parameter_error("k", f"at most min(d_h, d_x) = {rank}", k)
    with _lapack_threads(jac):
        _, s, vh = torch.linalg.svd(jac, full_matrices=False)  # s (B, r), vh (B, r, d_x)
    vectors = vh[:, :k]
    # SVD signs are arbitrary; fix them so that figures do not flip between runs.
    peak = vectors.gather(2, vectors.abs().argmax(dim=2, keepdim=True))  # (B, k, 1)
    vectors = vectors * torch.where(peak < 0, -1.0, 1.0).to(vectors)
    return Tangents(s[:, :k], vectors)


# ---------------------------------------------------------------------------------------------
# Everything at once.


@dataclass(frozen=True)
class Analysis:
    """The dataset-level metrics of one encoder on one set of points.

    Attributes
    ----------
    n_points : int
        Number of points the metrics were computed on.
    mean_jacobian_norm : float
        Mean per-sample ``||J_f(x)||_F``.
    saturation : float or None
        SAT (``None`` for an unbounded code).
    contraction : ContractionCurve
        Mean contraction ratio per radius.
    spectrum : np.ndarray
        ``(min(d_h, d_x),)`` mean sorted singular values.
    spectrum_points : int or None
        How many of the points (the first ones) the spectrum averages over; ``None``: all.
    """

    n_points: int
    mean_jacobian_norm: float
    saturation: float | None
    contraction: ContractionCurve
    spectrum: np.ndarray
    spectrum_points: int | None = None

    def n_significant(self, fraction: float = SPECTRUM_FRACTION) -> int:
        """Number of mean singular values above ``fraction`` times the largest.

        Examples
        --------
        >>> import numpy as np
        >>> a = Analysis(1, 0.0, None, ContractionCurve(np.ones(1), np.ones(1)),
        ...              np.array([10.0, 5.0, 1.0, 0.5]))
        >>> a.n_significant()
        2
        """
        top = float(self.spectrum[0]) if self.spectrum.size else 0.0
        return int(np.sum(self.spectrum > fraction * top)) if top > 0 else 0


def analyze(
    model: ModelLike,
    X: ArrayLike,
    *,
    radii: Sequence[float] | np.ndarray | None = None,
    seed: int = 0,
    batch_size: int = 32,
    spectrum_points: int | None = None,
) -> Analysis:
    """Every dataset-level metric of this module on the points ``X``.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        The encoder.
    X : Tensor or np.ndarray
        Points ``(n, ...)``, e.g. a few hundred validation samples.
    radii : sequence of float, optional
        Radii of the contraction curve (default: :func:`default_radii` of ``X``). Pass the same
        radii to compare models on the same axis.
    seed : int
        Seed of the contraction directions.
    batch_size : int
        Jacobians held in memory at once.
    spectrum_points : int, optional
        Average the spectrum over the first ``spectrum_points`` points only (default: all).
        The spectrum costs an eigendecomposition per point (about 0.1 s for a 1000 x 784
        Jacobian on one core), the other metrics a few forward passes, so this bounds the time
        on large ``X``.

    Examples
    --------
    >>> import torch
    >>> from contractive.nn import mlp_autoencoder
    >>> a = analyze(mlp_autoencoder([6, 4]), torch.rand(10, 6))
    >>> a.spectrum.shape, a.contraction.ratio.shape
    ((4,), (21,))
    """
    xb = as_batch(X, encoder_parts(model)[0], name="X")
    n = int(xb.shape[0])
    if spectrum_points is not None:
        spectrum_points = check_int("spectrum_points", spectrum_points, low=1)
    n_spec = n if spectrum_points is None else min(n, spectrum_points)
    return Analysis(
        n_points=n,
        mean_jacobian_norm=mean_jacobian_norm(model, xb, batch_size=max(batch_size, 256)),
        saturation=saturation(model, xb),
        contraction=contraction_ratio(model, xb, radii, seed=seed),
        spectrum=jacobian_spectrum(model, xb[:n_spec], batch_size=batch_size),
        spectrum_points=n_spec,
    )
