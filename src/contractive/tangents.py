"""Tangent bases at scale: the ``k`` leading right singular vectors of ``J_f(x)`` at many points.

The Manifold Tangent Classifier needs, at every training image, the input directions along
which a CAE's code changes most: the leading right singular vectors of the encoder's Jacobian
``J_f(x)`` (``d_h x d_x``). :func:`contractive.analysis.tangent_directions` does this with a
full SVD of each Jacobian, fine for a figure of a few points. Here it is done for 50000 and
more, two ways:

* ``method="subspace"`` (the default): randomized subspace iteration built on Jacobian-vector
  and vector-Jacobian products (:func:`torch.func.jvp`, :func:`torch.func.vjp`, vectorised over
  ``k + oversample`` directions). ``J`` is never formed: each iteration costs about
  ``2 (k + oversample)`` passes of the encoder per point. A final Rayleigh-Ritz step (an SVD
  of the small ``d_h x (k + oversample)`` matrix ``J V``) gives the vectors and values.
* ``method="svd"``: the full Jacobian of each point of a batch and ``torch.linalg.svd``, exact,
  to check the first and for small inputs.

Results go to memory, or with ``out=PATH`` to a memory-mapped ``.npy`` of shape
``(n, k, d_x)`` written batch by batch (float16 or float32) beside a ``PATH.values.npy`` of the
singular values: 60000 x 15 x 784 in float16 is 1.4 GB on disk and never has to fit in memory,
let alone twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .encoders import ArrayLike, ModelLike, as_batch, encoder_parts
from .validation import check_choice, check_int, parameter_error

__all__ = ["TangentBases", "subspace_angle", "tangent_bases"]


@dataclass(frozen=True)
class TangentBases:
    """Tangent vectors and their singular values at ``n`` points.

    Attributes
    ----------
    vectors : np.ndarray
        ``(n, k, d_x)``: row ``i, j`` is the ``j``-th right singular vector of ``J_f(x_i)``,
        unit norm, strongest first. A ``np.memmap`` when written to a file.
    values : np.ndarray
        ``(n, k)`` float32 singular values, decreasing along each row.

    Examples
    --------
    >>> import torch
    >>> enc = torch.nn.Linear(3, 2, bias=False)
    >>> bases = tangent_bases(enc, torch.rand(4, 3), k=1, method="svd")
    >>> bases.vectors.shape, bases.values.shape
    ((4, 1, 3), (4, 1))
    """

    vectors: np.ndarray
    values: np.ndarray


def subspace_angle(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Sine of the largest principal angle between the row spaces of ``a[i]`` and ``b[i]``.

    Parameters
    ----------
    a, b : array-like of shape (n, k, d)
        Orthonormal rows (as :attr:`TangentBases.vectors`).

    Returns
    -------
    np.ndarray
        ``(n,)``: 0 when the two bases span the same subspace, 1 when some direction of one is
        orthogonal to the other.

    Examples
    --------
    >>> import numpy as np
    >>> e = np.eye(3)[None]
    >>> float(subspace_angle(e[:, :2], e[:, [1, 0]])[0]), float(subspace_angle(e[:, :1], e[:, 1:2])[0])
    (0.0, 1.0)
    """  # noqa: E501
    ta = torch.as_tensor(np.asarray(a), dtype=torch.float64)
    tb = torch.as_tensor(np.asarray(b), dtype=torch.float64)
    # Residual of b's rows after projecting them on a's row space: (n, k, d).
    residual = tb - (tb @ ta.transpose(1, 2)) @ ta
    sines = torch.linalg.matrix_norm(residual, ord=2)
    return sines.clamp(max=1.0).numpy()


def _jacobian_svd(encoder: torch.nn.Module, x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    from torch.func import jacrev, vmap

    def one(xi: Tensor) -> Tensor:
        return encoder(xi.unsqueeze(0)).flatten()

    jac = vmap(jacrev(one))(x).reshape(x.shape[0], -1, x[0].numel())  # (B, d_h, d_x)
    _, s, vh = torch.linalg.svd(jac, full_matrices=False)  # (B, r), (B, r, d_x)
    return vh[:, :k], s[:, :k]


def _subspace(
    encoder: torch.nn.Module,
    x: Tensor,
    k: int,
    oversample: int,
    iterations: int,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    from torch.func import jvp, vjp, vmap

    b, shape = x.shape[0], x.shape[1:]
    d_x = x[0].numel()
    pulled = vjp(encoder, x)  # (f(x), pullback)
    code, pull = pulled[0], pulled[1]
    m = min(k + oversample, d_x, code[0].numel())

    def forward(v: Tensor) -> Tensor:  # (B, d_x) -> (B, d_h): J v per sample
        return jvp(encoder, (x,), (v.reshape(b, *shape),))[1].reshape(b, -1)

    def backward(u: Tensor) -> Tensor:  # (B, d_h) -> (B, d_x): J^T u per sample
        return pull(u.reshape(code.shape))[0].reshape(b, -1)

    v = torch.randn(b, m, d_x, generator=generator).to(x)  # (B, m, d_x)
    v = torch.linalg.qr(v.transpose(1, 2)).Q.transpose(1, 2)
    for _ in range(iterations):
        jv = vmap(forward, in_dims=1, out_dims=1)(v)  # (B, m, d_h)
        v = vmap(backward, in_dims=1, out_dims=1)(jv)  # (B, m, d_x): J^T J v
        v = torch.linalg.qr(v.transpose(1, 2)).Q.transpose(1, 2)
    # Rayleigh-Ritz: J V^T = U S W^T, so J's right singular vectors in span(V) are W^T V.
    jv = vmap(forward, in_dims=1, out_dims=2)(v)  # (B, d_h, m)
    # J V^T = Q R with R (B, m, m): R has J V^T's singular values and right singular vectors,
    # and its SVD is m x m. An SVD of the tall (d_h x m) product itself took most of the time.
    r = torch.linalg.qr(jv).R  # (B, m, m)
    _, s, wh = torch.linalg.svd(r)  # (B, m), (B, m, m)
    return (wh @ v)[:, :k], s[:, :k]


def tangent_bases(
    model: ModelLike,
    X: ArrayLike,
    k: int,
    *,
    method: str = "subspace",
    iterations: int = 4,
    oversample: int = 10,
    batch_size: int = 256,
    out: str | os.PathLike[str] | None = None,
    dtype: str = "float32",
    seed: int = 0,
    progress: bool = False,
) -> TangentBases:
    """The ``k`` leading right singular vectors of the encoder's Jacobian at every row of ``X``.

    Parameters
    ----------
    model : Autoencoder or nn.Module
        An autoencoder (its encoder, one layer or a stack) or an encoder module.
    X : Tensor or np.ndarray
        Points ``(n, n_features)`` (``np.memmap`` works: batches are read one at a time).
    k : int
        Vectors a point, at most ``min(d_h, d_x)``.
    method : {"subspace", "svd"}
        Randomized subspace iteration on Jacobian products, or a full SVD of each Jacobian.
    iterations : int
        Power iterations of ``"subspace"``; the error shrinks like
        ``(s_{k+oversample+1} / s_k) ** (2 * iterations)``.
    oversample : int
        Extra directions of ``"subspace"``.
    batch_size : int
        Points a batch.
    out : path, optional
        Write the vectors to this ``.npy`` (memory-mapped, replaced only once complete) and
        the values to ``<out stem>.values.npy``; the result then holds memory maps.
    dtype : {"float32", "float16"}
        Storage type of the vectors.
    seed : int
        Seed of the random start of ``"subspace"``.
    progress : bool
        Show a tqdm progress bar over points.

    Returns
    -------
    TangentBases

    Examples
    --------
    >>> import torch
    >>> enc = torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.Sigmoid())
    >>> x = torch.rand(5, 8)
    >>> fast = tangent_bases(enc, x, k=2, iterations=20)
    >>> exact = tangent_bases(enc, x, k=2, method="svd")
    >>> bool((subspace_angle(fast.vectors, exact.vectors) < 1e-4).all())
    True
    """
    encoder, prepare = encoder_parts(model)
    k = check_int("k", k, low=1, owner="tangent_bases")
    method = check_choice("method", method, ("subspace", "svd"), owner="tangent_bases")
    iterations = check_int("iterations", iterations, low=0, owner="tangent_bases")
    oversample = check_int("oversample", oversample, low=0, owner="tangent_bases")
    batch_size = check_int("batch_size", batch_size, low=1, owner="tangent_bases")
    dtype = check_choice("dtype", dtype, ("float32", "float16"), owner="tangent_bases")
    n = len(X)
    first = prepare(as_batch(X[:1], encoder, name="X"))
    d_x = first[0].numel()
    with torch.no_grad():
        d_h = encoder(first)[0].numel()
    if k > min(d_h, d_x):
        raise parameter_error(
            "k", f"at most min(d_h, d_x) = {min(d_h, d_x)}", k, owner="tangent_bases"
        )
    target = Path(out) if out is not None else None
    tmp = target.with_name(target.name + ".tmp") if target is not None else None
    if tmp is not None:
        vectors: np.ndarray = np.lib.format.open_memmap(tmp, "w+", dtype, (n, k, d_x))
    else:
        vectors = np.empty((n, k, d_x), dtype=dtype)
    values = np.empty((n, k), dtype=np.float32)
    generator = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    from tqdm.auto import tqdm

    with tqdm(total=n, disable=not progress, unit="point", desc="tangents") as bar:
        for start in range(0, n, batch_size):
            x = prepare(as_batch(X[start : start + batch_size], encoder, name="X"))
            if method == "svd":
                vec, val = _jacobian_svd(encoder, x, k)
            else:
                vec, val = _subspace(encoder, x, k, oversample, iterations, generator)
            vectors[start : start + x.shape[0]] = vec.detach().cpu().numpy().astype(dtype)
            values[start : start + x.shape[0]] = val.detach().cpu().numpy()
            bar.update(x.shape[0])
    if target is None or tmp is None:
        return TangentBases(vectors, values)
    assert isinstance(vectors, np.memmap)
    vectors.flush()
    del vectors
    values_path = target.with_name(target.stem + ".values.npy")
    np.save(values_path, values)
    os.replace(tmp, target)
    return TangentBases(np.load(target, mmap_mode="r", allow_pickle=False), values)
