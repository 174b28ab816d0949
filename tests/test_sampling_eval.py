"""Tests of contractive.sampling_eval: settings, starts, step size, mixing and the protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from contractive.data import load_dataset
from contractive.exceptions import ConfigError
from contractive.nn import mlp_autoencoder
from contractive.parzen import parzen_log_likelihood
from contractive.sampling import sample_chain
from contractive.sampling_eval import (
    SamplingSettings,
    chain_step_size,
    fit_classifier,
    measure_mixing,
    measure_sampling,
    start_points,
)


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return mlp_autoencoder([64, 16]).eval()


def test_settings_count_chains_and_refuse_bad_values() -> None:
    assert SamplingSettings(n_samples=10, per_chain=3).n_chains == 4
    with pytest.raises(ConfigError, match=r"'per_chain' parameter of SamplingSettings must be"):
        SamplingSettings(per_chain=0)
    with pytest.raises(
        ConfigError,
        match=r"'start' parameter of SamplingSettings must be a str "
        r"among \{'data', 'noise'\}",
    ):
        SamplingSettings(start="zeros")  # type: ignore[arg-type]


def test_start_points_are_rows_of_the_data_or_uniform_noise() -> None:
    X = np.arange(40, dtype=np.float32).reshape(10, 4)
    rows = start_points(X, 6, seed=1)
    assert len({tuple(r) for r in rows}) == 6  # distinct rows while there are enough
    assert all(any((r == x).all() for x in X) for r in rows)
    assert start_points(X, 25).shape == (25, 4)  # with replacement past len(X)
    noise = start_points(X, 500, "noise")
    assert noise.shape == (500, 4)
    assert noise.min() >= 0
    assert noise.max() < 1


def test_step_size_is_zero_when_nothing_moves_and_the_rms_move_otherwise() -> None:
    model, x0 = _model(), np.random.default_rng(0).random((5, 64)).astype(np.float32)
    assert chain_step_size(model, x0, sigma=1.0, steps=3, max_error=1e-12) == 0.0
    chain = sample_chain(model, x0, sigma=1.0, steps=3)
    expected = np.sqrt((np.diff(chain, axis=0) ** 2).mean())
    assert chain_step_size(model, x0, sigma=1.0, steps=3) == pytest.approx(expected, rel=1e-6)


def test_mixing_counts_the_classes_a_scripted_judge_sees() -> None:
    # The judge labels a state by the step it was reached at, whatever the model does: state
    # t of every chain is class t % 3, so each chain sees 3 classes and ends in class 5 % 3 = 2.
    model, x0 = _model(), np.random.default_rng(1).random((4, 64)).astype(np.float32)
    calls = []

    def judge(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape)
        return np.repeat(np.arange(6) % 3, 4)

    out = measure_mixing(model, x0, judge, sigma=1.0, steps=5)
    assert calls == [(6 * 4, 64)]
    assert out == {
        "classes_visited": 3.0,
        "classes_visited_min": 3,
        "left_start_class": 1.0,
        "chains": 4,
        "steps": 5,
    }


def test_the_judge_recognises_digits() -> None:
    ds = load_dataset("digits", split="train")
    predict = fit_classifier(ds.X, ds.y)
    test = load_dataset("digits", split="test")
    assert (predict(test.X) == test.y).mean() > 0.9


def test_measure_sampling_scores_samples_and_references_by_the_same_protocol() -> None:
    train, test = load_dataset("digits", split="train"), load_dataset("digits", split="test")
    X, y = train.X.astype(np.float32), train.y
    settings = SamplingSettings(
        n_samples=60,
        per_chain=2,
        burn_in=3,
        every=2,
        mixing_chains=5,
        mixing_steps=10,
        guard=True,
    )
    samples, results = measure_sampling(
        _model(),
        X_train=X[:1000],
        y_train=y[:1000],
        X_val=X[1000:],
        X_test=test.X,
        settings=settings,
        baseline=_model(),
    )
    assert samples.shape == (60, 64)
    rows = results["parzen"]
    assert set(rows) == {"model", "training images", "noise around training images", "baseline"}
    direct = parzen_log_likelihood(samples, test.X, X_val=X[1000:])
    assert rows["model"]["log_likelihood"] == pytest.approx(direct.log_likelihood)
    assert rows["training images"]["n_samples"] == 60
    assert rows["noise around training images"]["noise_std"] == results["step_rms"]
    assert 0.0 <= results["guard"]["refused_fraction"] <= 1.0
    assert results["mixing"]["chains"] == 5
    assert results["mixing"]["steps"] == 10
    assert results["settings"]["per_chain"] == 2
    assert {"sampling", "parzen", "classifier", "mixing"} <= set(results["seconds"])
