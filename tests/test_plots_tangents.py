"""Tests of contractive.plots_tangents.plot_tangent_moves: its layout, the drawn data, errors."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from contractive.data import load_dataset
from contractive.exceptions import ConfigError
from contractive.nn import Autoencoder, conv_autoencoder, mlp_autoencoder
from contractive.plots import plot_tangent_moves as exported
from contractive.plots_tangents import plot_tangent_moves
from contractive.tangents import tangent_bases

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _close_figures(one_thread: None) -> Iterator[None]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    """Three 8x8 test digits in [0, 1]."""
    return load_dataset("digits", split="test").X[:3]


def _model(hidden: int = 6) -> Autoencoder:
    torch.manual_seed(0)
    return mlp_autoencoder([64, hidden])  # untrained: its tangents are as good as any


def _data(ax: Any) -> np.ndarray:
    (image,) = ax.images
    return np.asarray(image.get_array())


def _titles(fig: Any) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


def test_layout_and_drawn_data(digits: np.ndarray) -> None:
    model = _model()
    steps = (-2.0, 0.0, 2.0)
    fig = plot_tangent_moves(model, digits, k=4, steps=steps, moved=2)
    cols = 1 + 4 + 2 * len(steps)
    assert len(fig.axes) == 3 * cols
    assert all(len(ax.images) == 1 for ax in fig.axes)
    axes = np.array(fig.axes).reshape(3, cols)
    bases = tangent_bases(model, digits, 4, method="svd")
    x = torch.from_numpy(digits)
    for i in range(3):
        np.testing.assert_array_equal(_data(axes[i, 0]), digits[i].reshape(8, 8))
        assert axes[i, 0].images[0].get_clim() == (0.0, 1.0)
        for j in range(4):
            tangent = bases.vectors[i, j].reshape(8, 8)
            np.testing.assert_allclose(_data(axes[i, 1 + j]), tangent, atol=1e-6)
            low, high = axes[i, 1 + j].images[0].get_clim()
            assert low == -high
            assert high == pytest.approx(np.abs(tangent).max(), rel=1e-5)
            assert axes[i, 1 + j].get_title().endswith(f"s={bases.values[i, j]:.2g}")
        for j in range(2):
            u = torch.from_numpy(bases.vectors[i, j])
            for c, t in enumerate(steps):
                with torch.no_grad():
                    expected = model(x[i : i + 1] + t * u).x_hat.reshape(8, 8).numpy()
                ax = axes[i, 1 + 4 + j * len(steps) + c]
                np.testing.assert_allclose(_data(ax), expected, atol=1e-5)
                assert ax.images[0].get_clim() == (0.0, 1.0)
    top = _titles(fig)[:cols]
    assert top[0] == "x"
    assert top[1].startswith("u1\ns=")
    assert top[5:8] == ["u1\nt=-2", "u1\nt=0", "u1\nt=2"]
    assert top[8] == "u2\nt=-2"
    assert _titles(fig)[cols] == ""  # column names on the top row only


def test_precomputed_tangents_are_used_as_given(digits: np.ndarray) -> None:
    model = _model()
    rng = np.random.default_rng(0)
    # Any unit vectors: the figure must move along these, not recompute its own.
    given = np.linalg.qr(rng.normal(size=(3, 64, 5)))[0].transpose(0, 2, 1).astype(np.float32)
    fig = plot_tangent_moves(model, digits, k=3, steps=np.array([1.5]), tangents=given)
    axes = np.array(fig.axes).reshape(3, 1 + 3 + 1)
    for i in range(3):
        np.testing.assert_allclose(_data(axes[i, 2]), given[i, 1].reshape(8, 8))
        with torch.no_grad():
            x = torch.from_numpy(digits[i : i + 1] + 1.5 * given[i, 0])
            expected = model(x).x_hat.reshape(8, 8).numpy()
        np.testing.assert_allclose(_data(axes[i, 4]), expected, atol=1e-5)
    assert "s=" not in "".join(_titles(fig))  # a bare array has no singular values
    # A TangentBases (float16, as written to disk) brings its values along.
    bases = tangent_bases(model, digits, 5, method="svd", dtype="float16")
    again = plot_tangent_moves(model, torch.from_numpy(digits), k=2, tangents=bases)
    assert again.axes[1].get_title() == f"u1\ns={bases.values[0, 0]:.2g}"
    np.testing.assert_array_equal(_data(again.axes[1]), bases.vectors[0, 0].reshape(8, 8))


def test_image_shapes() -> None:
    x = torch.rand(2, 64)
    fig = plot_tangent_moves(_model(), x, k=2, steps=(1.0,), image_shape=(1, 8, 8))
    assert _data(fig.axes[0]).shape == (8, 8)
    conv = conv_autoencoder((1, 8, 8), [2], kernel_size=3, stride=2, padding=1)
    fig = plot_tangent_moves(conv, x, k=2, steps=(1.0,))  # its input_shape
    assert [_data(ax).shape for ax in fig.axes] == [(8, 8)] * 8
    wide = torch.rand(1, 30)
    fig = plot_tangent_moves(mlp_autoencoder([30, 4]), wide, k=1, steps=(1.0,), image_shape=(5, 6))
    assert _data(fig.axes[2]).shape == (5, 6)


def test_saves_a_png_and_closes_the_figure(tmp_path: Path, digits: np.ndarray) -> None:
    import matplotlib.pyplot as plt

    path = tmp_path / "moves.png"
    fig = exported(_model(), digits[:2], k=2, path=path)
    assert path.read_bytes()[:8] == PNG
    assert not plt.fignum_exists(fig.number)
    assert len(fig.axes) == 2 * (1 + 2 + 5)  # the default steps: -4, -2, 0, 2, 4
    assert not list(tmp_path.glob("*.tmp*"))  # written atomically
    open_fig = plot_tangent_moves(_model(), digits[:1], k=1)
    assert plt.fignum_exists(open_fig.number)  # no path: left open for the caller


def _raises(message: str) -> Any:
    return pytest.raises(ConfigError, match=re.escape(message))


def test_errors(digits: np.ndarray) -> None:
    model, x = _model(hidden=3), digits[:2]
    of = "parameter of plot_tangent_moves must be"
    with _raises(f"The 'k' {of} at most min(d_h, n_features) = 3. Got 4 instead."):
        plot_tangent_moves(model, x, k=4)
    with _raises(f"The 'k' {of} an int in the range [1, inf). Got 0 instead."):
        plot_tangent_moves(model, x, k=0)
    given = np.zeros((2, 2, 64), dtype=np.float32)
    with _raises(f"The 'k' {of} at most the 2 tangents given a point. Got 3 instead."):
        plot_tangent_moves(model, x, k=3, tangents=given)
    with _raises(f"The 'X' {of} a 2-D array (n_samples, n_features) with a row. Got shape (64,)"):
        plot_tangent_moves(model, x[0], k=1)
    with _raises("Got shape (2, 8, 8) instead."):
        plot_tangent_moves(model, x.reshape(2, 8, 8), k=1)
    with _raises("Got shape (0, 64) instead."):
        plot_tangent_moves(model, x[:0], k=1)
    tangents_shape = f"The 'tangents' {of} of shape (n_samples, k, n_features) = (2, k, 64)."
    for bad in (np.zeros((3, 2, 64)), np.zeros((2, 2, 63)), np.zeros((2, 64))):
        with _raises(f"{tangents_shape} Got shape {bad.shape} instead."):
            plot_tangent_moves(model, x, k=1, tangents=bad)
    with _raises(f"The 'moved' {of} an int in the range [1, 2]. Got 3 instead."):
        plot_tangent_moves(model, x, k=2, moved=3)
    with _raises(f"The 'steps' {of} a non-empty sequence of floats. Got () instead."):
        plot_tangent_moves(model, x, k=1, steps=())
    with _raises(f"The 'steps' {of} a finite float. Got nan instead."):
        plot_tangent_moves(model, x, k=1, steps=(1.0, float("nan")))
    with _raises(f"The 'image_shape' {of} (H, W) or (C, H, W) holding n_features = 64."):
        plot_tangent_moves(model, x, k=1, image_shape=(8, 7))
    square = f"The 'image_shape' {of} given when n_features = 30 is not a square. Got None"
    with _raises(square):
        plot_tangent_moves(mlp_autoencoder([30, 4]), np.zeros((1, 30)), k=1)
    with _raises(f"The 'model' {of} an Autoencoder (its decoder draws the moved inputs). Got"):
        plot_tangent_moves(model.encoder, x, k=1)  # type: ignore[arg-type]
