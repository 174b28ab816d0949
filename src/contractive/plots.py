"""Matplotlib figures of a trained model: filters and reconstructions.

matplotlib is imported inside each function, with the non-interactive Agg backend, so that
importing contractive stays fast and works without a display.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["plot_filters", "plot_reconstructions", "save_figure"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Save a figure atomically (temporary file, then rename) and close it."""
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
