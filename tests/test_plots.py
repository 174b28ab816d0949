"""Tests of the analysis figures appended to contractive.plots: each writes a readable PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from contractive.plots import (
    _mosaic,
    plot_contraction_curves,
    plot_samples,
    plot_spectra,
    plot_tangents,
    plot_training_curves,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.is_file() and path.read_bytes()[:8] == PNG


def _size(path: Path) -> tuple[int, int]:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    return int(img.shape[1]), int(img.shape[0])


def test_contraction_curves(tmp_path: Path) -> None:
    r = np.logspace(-2, 1, 6)
    out = plot_contraction_curves(
        {"cae": (r, 0.05 + 0.01 * r), "ae": (r, np.full(6, 0.4))}, tmp_path / "c.png"
    )
    assert out == tmp_path / "c.png"
    assert _is_png(out)
    # Ratios three orders apart: a log axis.
    assert _is_png(plot_contraction_curves({"a": (r, r), "b": (r, 1e-3 * r)}, tmp_path / "d.png"))


def test_spectra_accepts_zeros_and_truncates(tmp_path: Path) -> None:
    out = plot_spectra(
        {"a": np.array([5.0, 1.0, 0.0]), "b": np.array([2.0, 2.0, 2.0])},
        tmp_path / "s.png",
        k=2,
    )
    assert _is_png(out)


def test_tangents_and_samples(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    t = plot_tangents(
        rng.random((3, 64)),
        np.array([[3.0, 2.0], [1.0, 0.5], [0.2, 0.1]]),
        rng.normal(size=(3, 2, 64)),
        (8, 8),
        tmp_path / "t.png",
    )
    assert _is_png(t)
    s = plot_samples(rng.random((31, 2, 64)), (1, 8, 8), tmp_path / "s.png", max_columns=6)
    assert _is_png(s)
    wide = plot_samples(rng.random((31, 2, 64)), (8, 8), tmp_path / "w.png", max_columns=20)
    assert _size(wide)[0] > _size(s)[0]  # more columns shown


def test_mosaic_layout() -> None:
    tiles = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    m = _mosaic(tiles, pad=1, fill=-1.0)
    assert m.shape == (2 * 2 + 1, 3 * 2 + 2)
    np.testing.assert_array_equal(m[3:5, 6:8], tiles[1, 2])
    assert np.all(m[2] == -1.0)
    assert np.all(m[:, 2] == -1.0)


@pytest.mark.parametrize("penalty", [2.0, None])
def test_training_curves_skip_missing_values(tmp_path: Path, penalty: float | None) -> None:
    rows = [
        {"epoch": 1, "recon": 5.0, "penalty": penalty, "val_recon": None, "val_total": None},
        {"epoch": 2, "recon": 4.0, "penalty": penalty, "val_recon": 4.5, "val_total": 4.7},
    ]
    out = plot_training_curves({"run": rows, "empty": []}, tmp_path / "training.png")
    assert _is_png(out)
