"""A figure for the Manifold Tangent Classifier: inputs, their tangents, and moves along them.

:func:`contractive.plots.plot_tangents` draws precomputed tangent vectors beside their inputs
as one mosaic image. :func:`plot_tangent_moves` starts from the model instead: it finds the
``k`` leading tangents of each input (:func:`contractive.tangents.tangent_bases`, exact SVD),
draws them, and draws what the autoencoder makes of the input moved along them,
``g(f(x + t u))``: along a tangent of the learned manifold the reconstruction should change
shape smoothly (a stroke thickens, a loop closes) and stay a digit.

Kept apart from :mod:`contractive.plots` (which re-exports it) to keep that module short;
matplotlib is imported inside the function, with the Agg backend, as there.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .encoders import ArrayLike, as_batch, to_tensor
from .exceptions import ConfigError
from .nn import Autoencoder
from .tangents import TangentBases, tangent_bases
from .validation import check_int, check_real, parameter_error

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["plot_tangent_moves"]

_OWNER = "plot_tangent_moves"

# Steps are in input-space norm units: each tangent u is a unit vector, so x + t u lies at
# distance |t| from x. An MNIST digit in [0, 1] has norm about 9 (a 8x8 `digits` image about
# 4), so t = 2 and 4 move it by roughly a fifth and a half of its own norm: far enough for the
# change of shape to show, not so far that the input stops looking like a digit. t = 0 is the
# plain reconstruction, the panel the moved ones are to be compared with.
DEFAULT_STEPS = (-4.0, -2.0, 0.0, 2.0, 4.0)


def _shape_error(name: str, constraint: str, shape: tuple[int, ...]) -> ConfigError:
    """A :func:`~contractive.validation.parameter_error` that shows an array by its shape."""
    return ConfigError(
        f"The {name!r} parameter of {_OWNER} must be {constraint}. Got shape {shape} instead."
    )


def _image_shape(model: Autoencoder, d: int, image_shape: Sequence[int] | None) -> tuple[int, int]:
    """``(H, W)`` of one image: given, else the model's ``input_shape``, else a square side."""
    if image_shape is None and model.input_shape is not None:
        image_shape = model.input_shape
    if image_shape is None:
        side = math.isqrt(d)
        if side * side != d:
            raise parameter_error(
                "image_shape", f"given when n_features = {d} is not a square", None, owner=_OWNER
            )
        return side, side
    shape = tuple(int(s) for s in image_shape)
    if len(shape) not in (2, 3) or math.prod(shape) != d:
        raise parameter_error(
            "image_shape",
            f"(H, W) or (C, H, W) holding n_features = {d}",
            image_shape,
            owner=_OWNER,
        )
    return shape[-2], shape[-1]


def _given_tangents(
    tangents: TangentBases | ArrayLike, n: int, k: int, d: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Vectors ``(n, k, d)`` and values ``(n, k)`` (None for a bare array) of ``tangents``."""
    values = None
    if isinstance(tangents, TangentBases):
        values = np.asarray(tangents.values, dtype=np.float64)
        tangents = tangents.vectors
    vectors = to_tensor(tangents, "tangents").detach().cpu().numpy()
    if vectors.ndim != 3 or vectors.shape[0] != n or vectors.shape[2] != d:
        constraint = f"of shape (n_samples, k, n_features) = ({n}, k, {d})"
        raise _shape_error("tangents", constraint, vectors.shape)
    if k > vectors.shape[1]:
        constraint = f"at most the {vectors.shape[1]} tangents given a point"
        raise parameter_error("k", constraint, k, owner=_OWNER)
    if values is not None and (values.ndim != 2 or values.shape[0] != n or values.shape[1] < k):
        raise _shape_error("tangents", f"TangentBases with values of shape ({n}, k)", values.shape)
    return vectors[:, :k], None if values is None else values[:, :k]


def plot_tangent_moves(
    model: Autoencoder,
    X: ArrayLike,
    *,
    k: int = 5,
    steps: Sequence[float] | np.ndarray = DEFAULT_STEPS,
    moved: int = 1,
    image_shape: Sequence[int] | None = None,
    tangents: TangentBases | ArrayLike | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Figure:
    """Each input, its ``k`` leading tangents, and its reconstruction moved along them.

    One row per input (row of ``X``), from left to right:

    * ``x``, gray from 0 (black) to 1 (white);
    * ``u_1 ... u_k``, the right singular vectors of the encoder's Jacobian ``J_f(x)`` with the
      largest singular values, strongest first, in a diverging colormap (blue negative, white
      zero, red positive) symmetric about 0 and scaled to each vector's largest ``|u|``, each
      titled with its singular value ``s``;
    * for each of the first ``moved`` tangents ``u_j``, then each ``t`` in ``steps``, the
      autoencoder's output ``g(f(x + t u_j))`` on the 0..1 gray scale (the panel of ``t = 0``
      is the plain reconstruction, to compare the others with).

    The top row's titles name the columns. Only the ``moved`` strongest tangents are moved,
    one block of ``len(steps)`` panels each, so that a row stays readable.

    Parameters
    ----------
    model : Autoencoder
        The trained autoencoder: its encoder gives the tangents, the whole model the moved
        reconstructions (``model(x).x_hat``).
    X : Tensor or np.ndarray
        ``(n, n_features)`` flat inputs, a few test digits: one row of the figure each.
    k : int
        Tangents shown a point, at most ``min(d_h, n_features)`` (or the number given in
        ``tangents``).
    steps : sequence of float or np.ndarray
        The ``t`` of ``x + t u``, in input-norm units: each ``u`` has norm 1, so ``x + t u``
        is at distance ``|t|`` from ``x``. The default, ``(-4, -2, 0, 2, 4)``, suits MNIST in
        [0, 1], whose digits have norm about 9 (8x8 ``digits`` have norm about 4: halve it
        there). ``x + t u`` is not clipped to [0, 1] before it goes through the model.
    moved : int
        How many of the leading tangents to move along, 1 to ``k``.
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(C, H, W)`` (the first channel is shown) of one input. By default the
        model's ``input_shape``, else a square (28 x 28 for 784 features, 8 x 8 for 64).
    tangents : TangentBases or array-like, optional
        Precomputed tangents of the rows of ``X`` (their first ``k`` are used), to skip their
        computation: a :class:`~contractive.tangents.TangentBases` or its ``vectors``, shape
        ``(n, >= k, n_features)``. A bare array has no singular values to show.
        By default they are computed with ``tangent_bases(model, X, k, method="svd")``.
    path : str or Path, optional
        Save the figure there (PNG unless the suffix says otherwise), atomically, and close
        it (pyplot no longer holds it; it can still be saved again).

    Returns
    -------
    matplotlib.figure.Figure
        ``n`` rows of ``1 + k + moved * len(steps)`` axes, one image each. Without ``path``
        the figure stays open in pyplot: close it with ``plt.close(fig)``.

    Raises
    ------
    ConfigError
        ``X`` is not 2-D with a row; ``k``, ``moved``, ``steps`` or ``image_shape`` is out of
        range; ``k`` exceeds the tangents available; ``tangents`` does not match ``X``; or
        ``model`` is not an :class:`~contractive.nn.Autoencoder`.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import torch
    >>> from contractive.nn import mlp_autoencoder
    >>> model = mlp_autoencoder([64, 6])  # 8x8 images, untrained
    >>> path = Path(tempfile.mkdtemp()) / "moves.png"
    >>> fig = plot_tangent_moves(model, torch.rand(2, 64), k=3, steps=(-2, 0, 2), path=path)
    >>> len(fig.axes), path.read_bytes()[:4]  # 2 rows of x, 3 tangents, 3 moves
    (14, b'\\x89PNG')
    """
    if not isinstance(model, Autoencoder):
        raise ConfigError(
            f"The 'model' parameter of {_OWNER} must be an Autoencoder (its decoder draws the "
            f"moved inputs). Got {type(model).__name__} instead."
        )
    k = check_int("k", k, low=1, owner=_OWNER)
    moved = check_int("moved", moved, low=1, high=k, owner=_OWNER)
    given: object = steps.tolist() if isinstance(steps, np.ndarray) else steps
    if isinstance(given, str) or not isinstance(given, Sequence) or len(given) == 0:
        raise parameter_error("steps", "a non-empty sequence of floats", steps, owner=_OWNER)
    ts = [check_real("steps", t, owner=_OWNER) for t in given]
    x_in = to_tensor(X, "X")
    if x_in.dim() != 2 or x_in.shape[0] == 0:
        shape = tuple(x_in.shape)
        raise _shape_error("X", "a 2-D array (n_samples, n_features) with a row", shape)
    x = as_batch(x_in, model, name="X")
    n, d = x.shape
    h, w = _image_shape(model, d, image_shape)
    vectors: np.ndarray
    values: np.ndarray | None
    if tangents is None:
        with torch.no_grad():
            d_h = model.encode(x[:1])[0].numel()
        if k > min(d_h, d):
            constraint = f"at most min(d_h, n_features) = {min(d_h, d)}"
            raise parameter_error("k", constraint, k, owner=_OWNER)
        bases = tangent_bases(model, x, k, method="svd")
        vectors, values = np.asarray(bases.vectors), np.asarray(bases.values, dtype=np.float64)
    else:
        vectors, values = _given_tangents(tangents, n, k, d)
    # Every moved input in one batch: (n, moved, len(steps), d).
    u = torch.as_tensor(vectors[:, :moved], dtype=x.dtype, device=x.device)
    t = torch.tensor(ts, dtype=x.dtype, device=x.device)
    shifted = x[:, None, None, :] + t[None, None, :, None] * u[:, :, None, :]
    with torch.no_grad():
        recon = model(shifted.reshape(-1, d)).x_hat.reshape(n, moved, len(ts), d)
    moves = recon.detach().cpu().numpy()
    images = x.detach().cpu().numpy()

    import matplotlib

    matplotlib.use("Agg", force=False)  # as contractive.plots: no display needed
    import matplotlib.pyplot as plt

    from .plots import save_figure

    cols = 1 + k + moved * len(ts)
    fig, axes = plt.subplots(
        n, cols, figsize=(0.75 * cols + 0.3, 0.85 * n + 0.6), squeeze=False, layout="constrained"
    )
    gray = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0, "interpolation": "nearest"}
    for i in range(n):
        row = axes[i]
        row[0].imshow(images[i].reshape(-1, h, w)[0], **gray)
        for j in range(k):
            img = vectors[i, j].reshape(-1, h, w)[0]
            bound = float(np.abs(img).max()) or 1.0
            row[1 + j].imshow(img, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
            name = f"u{j + 1}\n" if i == 0 else ""
            value = f"s={values[i, j]:.2g}" if values is not None else ""
            row[1 + j].set_title(name + value, fontsize=6, pad=2)
        for j in range(moved):
            for c, step in enumerate(ts):
                ax = row[1 + k + j * len(ts) + c]
                ax.imshow(moves[i, j, c].reshape(-1, h, w)[0], **gray)
                if i == 0:
                    ax.set_title(f"u{j + 1}\nt={step:.3g}", fontsize=6, pad=2)
        if i == 0:
            row[0].set_title("x", fontsize=6, pad=2)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(
        "x | tangents u (right singular vectors of J_f(x), singular value s) "
        "| g(f(x + t u)), ||u|| = 1",
        fontsize=7,
    )
    if path is not None:
        save_figure(fig, Path(path))
    return fig
