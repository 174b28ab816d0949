"""Matplotlib figures of a trained model: filters and reconstructions.

matplotlib is imported inside each function, with the non-interactive Agg backend, so that
importing contractive stays fast and works without a display.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .plots_tangents import plot_tangent_moves

__all__ = ["plot_filters", "plot_reconstructions", "save_figure"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a figure atomically (temporary file, then rename) and close it.

    The format follows the suffix of ``path`` (PNG when it has none).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import matplotlib
    >>> matplotlib.use("Agg")  # no window: this example only writes a file
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([0, 1], [1, 0])
    >>> path = save_figure(fig, Path(tempfile.mkdtemp()) / "line.png")
    >>> path.name, path.read_bytes()[:4]
    ('line.png', b'\\x89PNG')
    >>> plt.fignum_exists(fig.number)  # closed
    False
    """
    import io

    from .runs import atomic_write_bytes

    path = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.lstrip(".") or "png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _first_layer_weight(encoder: nn.Module) -> torch.Tensor:
    for module in encoder.modules():
        if isinstance(module, nn.Linear | nn.Conv2d):
            return module.weight.detach().cpu()
    raise ValueError("The encoder has no nn.Linear or nn.Conv2d layer whose filters to show.")


def _grid(images: np.ndarray, ncols: int) -> tuple[int, int]:
    n = images.shape[0]
    cols = min(ncols, n)
    return math.ceil(n / cols), cols


def plot_filters(
    encoder: nn.Module,
    image_shape: tuple[int, ...],
    path: str | Path,
    *,
    max_filters: int = 100,
) -> Path:
    """Draw the first layer's filters (rows of W, or conv kernels) as images.

    Each filter is scaled to its own range, with grey at zero, as in the CAE papers.

    Parameters
    ----------
    encoder : nn.Module
        Its first ``nn.Linear`` (rows reshaped to ``image_shape``) or ``nn.Conv2d`` is shown.
    image_shape : tuple of int
        ``(H, W)`` or ``(C, H, W)`` of one input.
    path : str or Path
        Output PNG.
    max_filters : int
        Show at most this many (the first ones).

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from contractive.nn import mlp_autoencoder
    >>> model = mlp_autoencoder([64, 5])  # 8x8 images, 5 hidden units
    >>> plot_filters(model.encoder, (8, 8), Path(tempfile.mkdtemp()) / "filters.png").name
    'filters.png'
    """
    w = _first_layer_weight(encoder)[:max_filters]
    if w.dim() == 2:
        w = (
            w.reshape(w.shape[0], *image_shape[-2:])
            if w.shape[1] == math.prod(image_shape[-2:])
            else w.reshape(w.shape[0], *image_shape)[:, 0]
        )
    else:
        w = w[:, 0]  # (C_out, kh, kw): first input channel
    images = w.numpy()
    plt = _pyplot()
    rows, cols = _grid(images, 10)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 0.9), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img in zip(axes.ravel(), images, strict=False):
        bound = float(np.abs(img).max()) or 1.0
        ax.imshow(img, cmap="gray", vmin=-bound, vmax=bound, interpolation="nearest")
    fig.suptitle(f"encoder filters (first {len(images)})", fontsize=9)
    return save_figure(fig, path)


def plot_reconstructions(
    x: np.ndarray,
    x_hat: np.ndarray,
    image_shape: tuple[int, ...],
    path: str | Path,
    *,
    n: int = 10,
) -> Path:
    """Inputs (top row) above their reconstructions (bottom row).

    Parameters
    ----------
    x, x_hat : np.ndarray
        ``(n_samples, n_features)`` inputs and reconstructions.
    image_shape : tuple of int
        Shape of one image; for ``(C, H, W)`` the first channel is shown.
    path : str or Path
        Output PNG.
    n : int
        Number of pairs.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> x = np.random.default_rng(0).random((5, 16))
    >>> path = Path(tempfile.mkdtemp()) / "reconstructions.png"
    >>> plot_reconstructions(x, 0.5 * x, (4, 4), path, n=3).is_file()
    True
    """
    n = min(n, x.shape[0])
    shape = image_shape[-2:]
    plt = _pyplot()
    fig, axes = plt.subplots(2, n, figsize=(n * 0.9, 2.0), squeeze=False)
    for i in range(n):
        for row, data in enumerate((x, x_hat)):
            img = np.asarray(data[i]).reshape(-1, *shape)[0]
            ax = axes[row, i]
            ax.imshow(img, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
            ax.axis("off")
    axes[0, 0].set_title("input", fontsize=8, loc="left")
    axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Analysis figures (contraction, spectrum, tangents, samples, training curves).

__all__ += [
    "plot_contraction_curves",
    "plot_samples",
    "plot_spectra",
    "plot_tangent_moves",
    "plot_tangents",
    "plot_training_curves",
]


def _image(row: np.ndarray, image_shape: tuple[int, ...]) -> np.ndarray:
    """One flat sample as a 2-D image (first channel of ``(C, H, W)``)."""
    return np.asarray(row).reshape(-1, *image_shape[-2:])[0]


def plot_contraction_curves(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
) -> Path:
    """Mean contraction ratio against the radius, one line per model.

    The radius axis is logarithmic; the ratio axis is linear from 0, or logarithmic when the
    ratios span more than a factor of 20.

    Parameters
    ----------
    curves : mapping of str to (radii, ratio)
        Label of each model and its curve (e.g. a
        :class:`~contractive.analysis.ContractionCurve`).
    path : str or Path
        Output PNG.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> r = np.logspace(-2, 1, 5)
    >>> path = Path(tempfile.mkdtemp()) / "contraction.png"
    >>> plot_contraction_curves({"cae": (r, 0.1 * r**0.2), "ae": (r, 0.5 + 0 * r)}, path).name
    'contraction.png'
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    values = []
    for label, (radii, ratio) in curves.items():
        ax.plot(np.asarray(radii), np.asarray(ratio), marker="o", markersize=3, label=label)
        values.append(np.asarray(ratio, dtype=np.float64).ravel())
    ax.set_xscale("log")
    flat = np.concatenate(values) if values else np.ones(1)
    positive = flat[flat > 0]
    # Linear from 0 (as in the paper) unless the curves span more than a factor 20.
    if positive.size and positive.max() > 20 * positive.min():
        ax.set_yscale("log")
    else:
        ax.set_ylim(0.0, 1.05 * float(flat.max()) if flat.size and flat.max() > 0 else 1.0)
    ax.set_xlabel("radius r = ||x1 - x0||")
    ax.set_ylabel("mean ||f(x1) - f(x0)|| / r")
    ax.set_title("contraction ratio", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_spectra(
    spectra: Mapping[str, np.ndarray],
    path: str | Path,
    *,
    k: int | None = None,
    fraction: float = 0.1,
) -> Path:
    """Mean Jacobian singular values by rank, one line per model.

    Left: the values on a log axis. Right: the values divided by each model's largest, with a
    dashed line at ``fraction`` (how many directions the code is sensitive to).

    Parameters
    ----------
    spectra : mapping of str to np.ndarray
        Label of each model and its decreasing mean singular values.
    path : str or Path
        Output PNG.
    k : int, optional
        Show the first ``k`` values (default: all).
    fraction : float
        Height of the reference line on the right panel.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> path = Path(tempfile.mkdtemp()) / "spectrum.png"
    >>> plot_spectra({"ae": np.array([3.0, 2.0, 1.0]), "cae": np.array([3.0, 0.2, 0.1])}, path).name
    'spectrum.png'
    """
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    for label, values in spectra.items():
        s = np.asarray(values, dtype=np.float64)[:k]
        rank = np.arange(1, s.size + 1)
        floor = np.finfo(np.float64).tiny  # keeps exact zeros drawable on a log axis
        left.plot(rank, np.maximum(s, floor), label=label)
        right.plot(rank, np.maximum(s / (s[0] if s.size and s[0] > 0 else 1.0), floor), label=label)
    right.axhline(fraction, color="grey", linestyle="--", linewidth=1, label=f"{fraction:g}")
    for ax, title in ((left, "mean singular values"), (right, "relative to the largest")):
        ax.set_yscale("log")
        ax.set_xlabel("rank")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    left.set_ylabel("singular value of J_f(x)")
    return save_figure(fig, path)


def _mosaic(tiles: np.ndarray, *, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Tiles ``(rows, cols, H, W)`` as one image with ``pad`` pixels of ``fill`` between them.

    One ``imshow`` of a mosaic draws far faster than a grid of subplots.
    """
    rows, cols, h, w = tiles.shape
    out = np.full((rows * (h + pad) - pad, cols * (w + pad) - pad), fill, dtype=np.float64)
    for i in range(rows):
        for j in range(cols):
            out[i * (h + pad) : i * (h + pad) + h, j * (w + pad) : j * (w + pad) + w] = tiles[i, j]
    return out


def _tile_ticks(ax: Any, n: int, size: int, labels: Sequence[str], *, pad: int = 1) -> None:
    ax.set_xticks([j * (size + pad) + (size - 1) / 2 for j in range(n)], labels, fontsize=7)
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def plot_tangents(
    x: np.ndarray,
    values: np.ndarray,
    vectors: np.ndarray,
    image_shape: tuple[int, ...],
    path: str | Path,
) -> Path:
    """Each input beside the leading right singular vectors of its Jacobian.

    One row per point: the input, then the tangent directions (grey is zero, each scaled to
    its own range), each marked with its singular value. :func:`plot_tangent_moves` computes
    the tangents from a model and adds the reconstructions of inputs moved along them.

    Parameters
    ----------
    x : np.ndarray
        ``(n, n_features)`` inputs.
    values : np.ndarray
        ``(n, k)`` singular values.
    vectors : np.ndarray
        ``(n, k, n_features)`` right singular vectors.
    image_shape : tuple of int
        Shape of one image.
    path : str or Path
        Output PNG.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> v = np.random.default_rng(0).normal(size=(2, 3, 16))  # 2 points, 3 directions, 4x4
    >>> path = Path(tempfile.mkdtemp()) / "tangents.png"
    >>> plot_tangents(np.zeros((2, 16)), np.ones((2, 3)), v, (4, 4), path).name
    'tangents.png'
    """
    values = np.asarray(values)
    n, k = values.shape
    h, w = image_shape[-2:]
    tiles = np.empty((n, k + 1, h, w))
    for i in range(n):
        tiles[i, 0] = np.clip(_image(x[i], image_shape), 0.0, 1.0)
        for j in range(k):
            img = _image(vectors[i, j], image_shape)
            bound = float(np.abs(img).max()) or 1.0
            tiles[i, j + 1] = 0.5 + 0.5 * img / bound  # grey is zero
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(0.75 * (k + 1) + 0.4, 0.8 * n + 0.6))
    ax.imshow(_mosaic(tiles), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    _tile_ticks(ax, k + 1, w, ["input", *(f"t{j + 1}" for j in range(k))])
    for i in range(n):
        for j in range(k):
            ax.text(
                (j + 1) * (w + 1),
                i * (h + 1) + h - 1,
                f"{float(values[i, j]):.2g}",
                color="yellow",
                fontsize=5,
                va="bottom",
            )
    ax.set_title("tangent directions: right singular vectors of J (singular value)", fontsize=8)
    return save_figure(fig, path)


def plot_samples(
    chain: np.ndarray,
    image_shape: tuple[int, ...],
    path: str | Path,
    *,
    max_columns: int = 12,
    samples: np.ndarray | None = None,
    n_shown: int = 100,
) -> Path:
    """Sampling chains as an image grid (one row per chain, one column per step), under a
    grid of samples when ``samples`` are given.

    Parameters
    ----------
    chain : np.ndarray
        ``(steps + 1, n_chains, n_features)``, as from
        :func:`~contractive.analysis.sample_chain`; column 0 is the starting point.
    image_shape : tuple of int
        Shape of one image.
    path : str or Path
        Output PNG.
    max_columns : int
        With more steps, evenly spaced steps (always the first and last) are shown.
    samples : np.ndarray, optional
        ``(n, n_features)`` samples (:func:`~contractive.sampling.draw_samples`); the first
        ``n_shown`` are drawn above the chains, ``max_columns`` a row.
    n_shown : int
        How many samples to draw.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> chain = np.zeros((4, 2, 16))  # 3 steps from 2 starting points, 4x4 images
    >>> plot_samples(chain, (4, 4), Path(tempfile.mkdtemp()) / "samples.png").name
    'samples.png'
    >>> plot_samples(chain, (4, 4), Path(tempfile.mkdtemp()) / "s.png", samples=np.zeros((30, 16))).name
    's.png'
    """  # noqa: E501
    chain = np.asarray(chain)
    n_steps, n_chains = chain.shape[0], chain.shape[1]
    cols = np.unique(np.linspace(0, n_steps - 1, min(n_steps, max_columns)).round().astype(int))
    h, w = image_shape[-2:]
    tiles = np.empty((n_chains, cols.size, h, w))
    for i in range(n_chains):
        for c, step in enumerate(cols):
            tiles[i, c] = np.clip(_image(chain[step, i], image_shape), 0.0, 1.0)
    plt = _pyplot()
    if samples is None:
        fig, ax = plt.subplots(figsize=(0.6 * cols.size + 0.4, 0.65 * n_chains + 0.6))
    else:
        shown = np.asarray(samples)[:n_shown]
        rows = -(-len(shown) // max_columns)
        grid = np.ones((rows * max_columns, h, w))  # blank (white) tiles past the last sample
        for k, sample in enumerate(shown):
            grid[k] = np.clip(_image(sample, image_shape), 0.0, 1.0)
        fig, (top, ax) = plt.subplots(
            2,
            1,
            figsize=(0.6 * max(cols.size, max_columns) + 0.4, 0.6 * (rows + n_chains) + 1.2),
            height_ratios=[rows, n_chains],
        )
        top.imshow(
            _mosaic(grid.reshape(rows, max_columns, h, w)),
            cmap="gray",
            vmin=0.0,
            vmax=1.0,
            interpolation="nearest",
        )
        top.axis("off")
        top.set_title(f"samples (the first {len(shown)})", fontsize=8)
    ax.imshow(_mosaic(tiles), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
    _tile_ticks(ax, cols.size, w, ["x0" if s == 0 else str(s) for s in cols])
    ax.set_title("sampling chains: x <- g(f(x) + J J^T alpha), by step", fontsize=8)
    return save_figure(fig, path)


def plot_training_curves(
    histories: Mapping[str, Sequence[Mapping[str, Any]]],
    path: str | Path,
) -> Path:
    """Training curves from ``metrics.jsonl`` rows, one line per run.

    Panels: reconstruction loss (training solid, validation dashed), the penalty
    ``||J_f(x)||_F^2`` (without lambda, log axis) and the validation objective ``val_total``.
    Missing values (``None``) are left out.

    Parameters
    ----------
    histories : mapping of str to sequence of dict
        Label of each run and its epoch rows (``epoch``, ``recon``, ``penalty``,
        ``val_recon``, ``val_total``), as :func:`contractive.runs.read_metrics` returns.
    path : str or Path
        Output PNG.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> rows = [
    ...     {"epoch": 1, "recon": 5.0, "penalty": 2.0, "val_recon": 5.5, "val_total": 6.0},
    ...     {"epoch": 2, "recon": 4.0, "penalty": 1.5, "val_recon": None, "val_total": None},
    ... ]
    >>> path = Path(tempfile.mkdtemp()) / "training.png"
    >>> plot_training_curves({"cae": rows}, path).name
    'training.png'
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.2))
    panels = (
        (axes[0], ("recon", "val_recon"), "reconstruction loss"),
        (axes[1], ("penalty",), "||J_f(x)||_F^2 (no lambda)"),
        (axes[2], ("val_total",), "validation objective"),
    )
    for n, (label, rows) in enumerate(histories.items()):
        color = f"C{n % 10}"
        for ax, keys, _ in panels:
            for key, style in zip(keys, ("-", "--"), strict=False):
                pts = [
                    (float(r.get("epoch", i + 1)), float(r[key]))
                    for i, r in enumerate(rows)
                    if r.get(key) is not None
                ]
                if pts:
                    xs, ys = zip(*pts, strict=True)
                    name = label if key != "val_recon" else f"{label} (val)"
                    ax.plot(xs, ys, style, color=color, marker="o", markersize=3, label=name)
    for ax, _, title in panels:
        ax.set_xlabel("epoch")
        ax.set_title(title, fontsize=10)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if axes[1].get_lines():
        axes[1].set_yscale("log")
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------
# Data figures.

__all__ += ["plot_image_grid"]


def plot_image_grid(
    images: np.ndarray,
    image_shape: tuple[int, ...],
    path: str | Path,
    *,
    labels: Sequence[object] | None = None,
    title: str | None = None,
) -> Path:
    """Images in a square grid, gray from 0 (black) to 1 (white), each with its label above.

    The grid has ``ceil(sqrt(n))`` columns and as many rows as needed. Values are shown as
    they are on a fixed 0..1 scale (not rescaled per image), so that images compare; values
    outside it show as black or white.

    Parameters
    ----------
    images : np.ndarray
        ``(n, n_features)`` flat samples, ``n >= 1``.
    image_shape : tuple of int
        Shape of one image, ``(H, W)`` or ``(C, H, W)`` (the first channel is shown).
    path : str or Path
        Output PNG, written atomically.
    labels : sequence, optional
        ``n`` labels, each written small above its image (``str(label)``); none when omitted.
    title : str, optional
        A line above the grid.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        If there are no images, or not one label per image.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> x = np.random.default_rng(0).random((5, 16))  # five 4x4 images: a 3x2 grid
    >>> path = Path(tempfile.mkdtemp()) / "grid.png"
    >>> plot_image_grid(x, (4, 4), path, labels=[0, 1, 1, 0, 1], title="toy").read_bytes()[:4]
    b'\\x89PNG'
    >>> plot_image_grid(x, (4, 4), path, labels=[0])
    Traceback (most recent call last):
        ...
    ValueError: 5 images but 1 labels: give one label per image, or none
    """
    images = np.asarray(images)
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images to draw")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{n} images but {len(labels)} labels: give one label per image, or none")
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    label_room = 0.12 if labels is not None else 0.0  # inches above each image for its label
    height = rows * (0.6 + label_room) + (0.3 if title else 0.0)  # inches
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.6, height), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[:n]):
        ax.imshow(
            _image(images[i], image_shape), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest"
        )
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=6, pad=1.5)
    top = 1.0 - (0.3 if title else 0.05) / height  # room for the title line above the grid
    fig.subplots_adjust(
        left=0.02,
        right=0.98,
        bottom=0.02,
        top=top,
        wspace=0.08,
        hspace=0.3 if labels is not None else 0.08,
    )
    if title:
        fig.suptitle(title, fontsize=8, y=1.0 - 0.05 / height, va="top")
    return save_figure(fig, path)
