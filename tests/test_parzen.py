"""Tests of contractive.parzen: the Parzen-window log-likelihood against direct computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import logsumexp
from sklearn.neighbors import KernelDensity

from contractive.parzen import (
    DEFAULT_SIGMAS,
    ParzenResult,
    parzen_log_density,
    parzen_log_likelihood,
)


def _direct(samples: np.ndarray, X: np.ndarray, sigma: float) -> np.ndarray:
    """log p(x) from scipy: the log-mean of one Gaussian density per sample."""
    cov = sigma**2 * np.eye(samples.shape[1])
    logpdf = np.stack([stats.multivariate_normal(s, cov).logpdf(X) for s in samples])
    return logsumexp(logpdf, axis=0) - math.log(len(samples))


def test_default_sigmas_are_ten_log_spaced_from_point_one_to_one() -> None:
    assert len(DEFAULT_SIGMAS) == 10
    assert DEFAULT_SIGMAS[0] == pytest.approx(0.1)
    assert DEFAULT_SIGMAS[-1] == pytest.approx(1.0)
    ratios = np.diff(np.log(DEFAULT_SIGMAS))
    np.testing.assert_allclose(ratios, ratios[0])


def test_log_density_equals_scipy_mixture_of_gaussians() -> None:
    rng = np.random.default_rng(0)
    samples, X = rng.normal(size=(40, 3)), rng.normal(size=(25, 3))
    got = parzen_log_density(samples, X, [0.3, 1.7])
    np.testing.assert_allclose(got[0], _direct(samples, X, 0.3), rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[1], _direct(samples, X, 1.7), rtol=0, atol=1e-9)


def test_log_density_equals_sklearn_kernel_density() -> None:
    # KernelDensity with a Gaussian kernel is the same isotropic Parzen window.
    rng = np.random.default_rng(1)
    samples, X = rng.random((300, 20)), rng.random((50, 20))
    kde = KernelDensity(kernel="gaussian", bandwidth=0.4).fit(samples)
    got = parzen_log_density(samples, X, [0.4])[0]
    np.testing.assert_allclose(got, kde.score_samples(X), rtol=0, atol=1e-8)


def test_blocks_do_not_change_the_result() -> None:
    rng = np.random.default_rng(2)
    samples, X = rng.random((53, 10)), rng.random((31, 10))
    whole = parzen_log_density(samples, X, DEFAULT_SIGMAS, batch_size=1000)
    blocks = parzen_log_density(samples, X, DEFAULT_SIGMAS, batch_size=7)
    np.testing.assert_allclose(blocks, whole, rtol=0, atol=1e-10)


def test_far_points_keep_a_finite_log_density() -> None:
    # exp(-d^2 / 2 sigma^2) underflows to 0 at d = 100, sigma = 0.1; the log must not.
    samples = np.zeros((2, 1))
    got = parzen_log_density(samples, np.array([[100.0]]), [0.1])[0, 0]
    assert got == pytest.approx(-(100.0**2) / (2 * 0.01) - 0.5 * math.log(2 * math.pi * 0.01))


def test_gaussian_sample_scored_under_its_own_window_matches_the_smoothed_density() -> None:
    # The Parzen estimate of N(0, I) samples converges to N(0, (1 + sigma^2) I): its mean test
    # log-likelihood approaches that density's, computed by scipy on the same test points.
    rng = np.random.default_rng(3)
    samples, X_test, X_val = (
        rng.normal(size=(20000, 2)),
        rng.normal(size=(2000, 2)),
        rng.normal(size=(2000, 2)),
    )
    result = parzen_log_likelihood(samples, X_test, X_val=X_val, sigmas=[0.5])
    smoothed = stats.multivariate_normal(np.zeros(2), 1.25 * np.eye(2)).logpdf(X_test).mean()
    assert result.log_likelihood == pytest.approx(smoothed, abs=0.03)


def test_sigma_is_the_validation_argmax_and_the_score_is_its_test_mean() -> None:
    rng = np.random.default_rng(4)
    samples, X_test, X_val = (
        rng.normal(size=(500, 4)),
        rng.normal(size=(80, 4)),
        rng.normal(size=(60, 4)),
    )
    result = parzen_log_likelihood(samples, X_test, X_val=X_val)
    val = parzen_log_density(samples, X_val, DEFAULT_SIGMAS).mean(axis=1)
    np.testing.assert_allclose(result.validation_log_likelihoods, val)
    assert result.sigma == DEFAULT_SIGMAS[int(np.argmax(val))]
    test = _direct(samples, X_test, result.sigma)
    assert result.log_likelihood == pytest.approx(test.mean(), abs=1e-9)
    assert result.standard_error == pytest.approx(test.std(ddof=1) / math.sqrt(80), rel=1e-9)
    assert (result.n_samples, result.n_test, result.n_validation) == (500, 80, 60)


def test_a_wider_spread_of_samples_chooses_a_wider_window() -> None:
    # The rule behind the choice: samples spread like the data need a window of their spacing.
    rng = np.random.default_rng(5)
    X_test, X_val = rng.normal(size=(200, 2)), rng.normal(size=(200, 2))
    sigmas = np.logspace(-2, 1, 13)
    dense = parzen_log_likelihood(rng.normal(size=(5000, 2)), X_test, X_val=X_val, sigmas=sigmas)
    sparse = parzen_log_likelihood(rng.normal(size=(50, 2)), X_test, X_val=X_val, sigmas=sigmas)
    assert sparse.sigma > dense.sigma
    assert dense.log_likelihood > sparse.log_likelihood


def test_float32_tensors_and_float64_arrays_give_the_same_score() -> None:
    rng = np.random.default_rng(6)
    samples, X_test, X_val = (rng.random((n, 16)).astype(np.float32) for n in (100, 40, 30))
    a = parzen_log_likelihood(samples, X_test, X_val=X_val)
    b = parzen_log_likelihood(
        torch.from_numpy(samples), torch.from_numpy(X_test), X_val=X_val.astype(np.float64)
    )
    assert a == b


def test_to_dict_is_json_ready() -> None:
    import json

    rng = np.random.default_rng(7)
    result = parzen_log_likelihood(
        rng.random((20, 3)), rng.random((5, 3)), X_val=rng.random((5, 3))
    )
    assert isinstance(result, ParzenResult)
    assert json.loads(json.dumps(result.to_dict()))["sigma"] == result.sigma


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"samples": np.zeros(5)}, r"'samples' parameter must be a non-empty 2-D array"),
        ({"samples": np.zeros((0, 3))}, r"'samples' parameter must be a non-empty 2-D array"),
        (
            {"X_test": np.zeros((4, 2))},
            r"'X_test' parameter must have as many features as "
            r"'samples' \(3\). Got 2 instead",
        ),
        ({"X_val": np.zeros((4, 5))}, r"'X_val' parameter must have as many features"),
        ({"samples": np.full((2, 3), np.nan)}, r"'samples' parameter must hold finite values"),
        ({"sigmas": []}, r"'sigmas' parameter must be a non-empty sequence of finite reals > 0"),
        ({"sigmas": [0.1, -1.0]}, r"'sigmas' parameter must be a non-empty sequence"),
        ({"sigmas": [float("inf")]}, r"'sigmas' parameter must be a non-empty sequence"),
        ({"sigmas": ["a"]}, r"'sigmas' parameter must be a non-empty sequence"),
        ({"batch_size": 0}, r"'batch_size' parameter must be an int in the range \[1, inf\)"),
    ],
)
def test_bad_arguments_are_refused_with_the_parameter_named(
    kwargs: dict[str, object], match: str
) -> None:
    args: dict[str, object] = {
        "samples": np.zeros((3, 3)),
        "X_test": np.zeros((4, 3)),
        "X_val": np.zeros((4, 3)),
    }
    args.update(kwargs)
    samples, X_test = args.pop("samples"), args.pop("X_test")
    with pytest.raises(ValueError, match=match):
        parzen_log_likelihood(samples, X_test, **args)  # type: ignore[arg-type]
