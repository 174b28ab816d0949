"""Tests of contractive.sampling's guard, multi-chain sampler and mixing count.

The chain step itself (``x <- g(f(x) + J J^T alpha)``) is tested in tests/test_analysis.py,
where ``sample_chain`` is used with the other analyses.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contractive.exceptions import ConfigError
from contractive.nn import mlp_autoencoder
from contractive.sampling import (
    classes_visited,
    draw_samples,
    reconstruction_guard,
    sample_chain,
)


def _model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return mlp_autoencoder([8, 5]).eval()


def _error(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        t = torch.from_numpy(x)
        return (model.decode(model.encode(t)) - t).pow(2).sum(1).numpy()


def test_guard_is_a_multiple_of_a_quantile_of_the_reconstructions_error() -> None:
    model = _model()
    X = torch.rand(200, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        r = model.decode(model.encode(X))
    errors = _error(model, r.numpy()).astype(np.float64)
    assert reconstruction_guard(model, X) == pytest.approx(2.0 * np.quantile(errors, 0.99))
    assert reconstruction_guard(model, X, factor=3.0, quantile=0.5) == pytest.approx(
        3.0 * np.quantile(errors, 0.5)
    )


def test_a_guard_nothing_passes_keeps_every_chain_at_its_start() -> None:
    model, x0 = _model(), np.random.default_rng(0).random((4, 8)).astype(np.float32)
    chain = sample_chain(model, x0, sigma=1.0, steps=5, max_error=1e-12)
    np.testing.assert_array_equal(chain, np.broadcast_to(x0, chain.shape))


def test_guarded_steps_are_either_refused_or_below_the_bound() -> None:
    model, x0 = _model(), np.random.default_rng(1).random((16, 8)).astype(np.float32)
    free = sample_chain(model, x0, sigma=3.0, steps=1, seed=4)[1]
    bound = float(np.median(_error(model, free)))  # half of the free moves exceed it
    guarded = sample_chain(model, x0, sigma=3.0, steps=1, seed=4, max_error=bound)[1]
    moved = np.any(guarded != x0, axis=1)
    assert 0 < moved.sum() < 16
    np.testing.assert_array_equal(guarded[moved], free[moved])  # the same proposal, taken
    assert np.all(_error(model, guarded[moved]) <= bound)
    assert np.all(_error(model, free[~moved]) > bound)


def test_without_a_guard_every_step_is_taken() -> None:
    model = _model()
    x0 = np.random.default_rng(2).random((3, 8)).astype(np.float32)
    samples, refused = draw_samples(model, x0, burn_in=2, every=1)
    assert refused == 0.0
    np.testing.assert_array_equal(samples, sample_chain(model, x0, sigma=1.0, steps=2)[2])


def test_draw_samples_keeps_the_burn_in_then_every_kth_state() -> None:
    model = _model()
    x0 = np.random.default_rng(3).random((3, 8)).astype(np.float32)
    samples, _ = draw_samples(model, x0, per_chain=3, burn_in=4, every=2, seed=5, sigma=0.7)
    chain = sample_chain(model, x0, sigma=0.7, steps=8, seed=5)  # (9, 3, 8)
    expected = chain[[4, 6, 8]].transpose(1, 0, 2).reshape(9, 8)  # chain by chain
    np.testing.assert_array_equal(samples, expected)


def test_draw_samples_batch_b_uses_seed_plus_b() -> None:
    model = _model()
    x0 = np.random.default_rng(4).random((5, 8)).astype(np.float32)
    samples, _ = draw_samples(model, x0, burn_in=3, seed=2, batch_size=2)
    for b, start in enumerate(range(0, 5, 2)):
        chain = sample_chain(model, x0[start : start + 2], sigma=1.0, steps=3, seed=2 + b)
        np.testing.assert_array_equal(samples[start : start + 2], chain[3])


def test_draw_samples_counts_refused_steps() -> None:
    model = _model()
    x0 = np.random.default_rng(5).random((4, 8)).astype(np.float32)
    samples, refused = draw_samples(model, x0, burn_in=3, max_error=1e-12)
    assert refused == 1.0
    np.testing.assert_array_equal(samples, x0)


def test_classes_visited_counts_distinct_labels_per_chain() -> None:
    labels = np.array([[0, 5, 1], [0, 5, 2], [0, 4, 3], [0, 5, 4]])
    np.testing.assert_array_equal(classes_visited(labels), [1, 2, 4])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda m, x: draw_samples(m, x, per_chain=0), r"'per_chain' parameter must be an int"),
        (lambda m, x: draw_samples(m, x, burn_in=0), r"'burn_in' parameter must be an int"),
        (lambda m, x: draw_samples(m, x, every=0), r"'every' parameter must be an int"),
        (lambda m, x: draw_samples(m, x, sigma=-1.0), r"'sigma' parameter must be a float"),
        (
            lambda m, x: draw_samples(m.encoder, x),
            r"'model' parameter of draw_samples must be an Autoencoder \(the chain needs the "
            r"decoder\). Got Sequential instead",
        ),
        (
            lambda m, x: sample_chain(m, x, max_error=0.0),
            r"'max_error' parameter must be a float in the range \(0, inf\)",
        ),
        (
            lambda m, x: reconstruction_guard(m, x, factor=0.0),
            r"'factor' parameter of reconstruction_guard must be a float in the range \(0",
        ),
        (lambda m, x: reconstruction_guard(m, x, quantile=1.5), r"'quantile' parameter must be"),
        (lambda m, x: classes_visited(np.zeros(3)), r"'labels' parameter must be a 2-D array"),
    ],
)
def test_bad_arguments_name_the_parameter(call: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        call(_model(), torch.rand(2, 8))  # type: ignore[operator]
