"""Tests of contractive.analysis: every metric on a case with a known answer, and brute force.

Reference Jacobians come from ``torch.autograd.functional.jacobian`` one sample at a time, in
float64, independently of the code under test; closed forms are written out in the tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from contractive import analysis
from contractive.analysis import (
    Analysis,
    ContractionCurve,
    analyze,
    contraction_ratio,
    default_radii,
    encoder_jacobian,
    jacobian_norms,
    jacobian_spectrum,
    jjt_product,
    mean_jacobian_norm,
    sample_chain,
    saturation,
    singular_values,
    tangent_directions,
)
from contractive.exceptions import ConfigError
from contractive.nn import Autoencoder, conv_autoencoder, mlp_autoencoder

DT = torch.float64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(20120626)


# ---------------------------------------------------------------------------------------------
# Models and brute-force references.


def _double(model: nn.Module) -> nn.Module:
    return model.to(DT)


MODELS: dict[str, Callable[[], tuple[nn.Module, tuple[int, ...]]]] = {
    # name -> (model, shape of one input sample as the function under test receives it)
    "dense-sigmoid": lambda: (mlp_autoencoder([9, 6], activation="sigmoid"), (9,)),
    "dense-tanh": lambda: (mlp_autoencoder([9, 6], activation="tanh"), (9,)),
    "dense-softplus-wide": lambda: (mlp_autoencoder([5, 8], activation="softplus"), (5,)),
    "deep-mlp": lambda: (mlp_autoencoder([9, 7, 4], activation="elu"), (9,)),
    "conv": lambda: (conv_autoencoder((1, 6, 6), [2], kernel_size=3), (36,)),
    "plain-flatten-encoder": lambda: (
        nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.GELU()),
        (1, 3, 4),
    ),
}


def _make(name: str) -> tuple[nn.Module, Tensor]:
    model, shape = MODELS[name]()
    model = _double(model).eval()
    return model, torch.rand(4, *shape, dtype=DT)


def _encoder_fn(model: nn.Module) -> Callable[[Tensor], Tensor]:
    if isinstance(model, Autoencoder):
        return model.encode
    return model


def brute_jacobians(model: nn.Module, x: Tensor) -> Tensor:
    """``(B, d_h, d_x)`` from one autograd call per sample."""
    f = _encoder_fn(model)
    jacs = []
    for i in range(x.shape[0]):

        def fi(z: Tensor, i: int = i) -> Tensor:
            return f(z.unsqueeze(0)).reshape(-1)

        j = torch.autograd.functional.jacobian(fi, x[i])
        jacs.append(j.reshape(j.shape[0], -1))
    return torch.stack(jacs)


# ---------------------------------------------------------------------------------------------
# Known answers.


def test_linear_encoder_spectrum_is_singular_values_of_w() -> None:
    enc = nn.Linear(7, 5).to(DT)
    x = torch.rand(11, 7, dtype=DT)
    expected = torch.linalg.svdvals(enc.weight.detach()).numpy()
    np.testing.assert_allclose(jacobian_spectrum(enc, x, batch_size=4), expected, rtol=1e-10)


def test_linear_autoencoder_spectrum_through_the_model() -> None:
    model = mlp_autoencoder([6, 9], activation="identity").to(DT)
    expected = torch.linalg.svdvals(model.encoder[0].weight.detach()).numpy()
    np.testing.assert_allclose(jacobian_spectrum(model, torch.rand(3, 6, dtype=DT)), expected)
    # d_h > d_x: min(d_h, d_x) values.
    assert jacobian_spectrum(model, torch.rand(3, 6, dtype=DT)).shape == (6,)


def test_linear_encoder_contraction_ratio_is_the_same_at_every_radius() -> None:
    enc = nn.Linear(8, 5).to(DT)
    x = torch.rand(20, 8, dtype=DT)
    radii = np.logspace(-4, 2, 7)
    curve = contraction_ratio(enc, x, radii, seed=3)
    np.testing.assert_allclose(curve.ratio, curve.ratio[0], rtol=1e-9)
    np.testing.assert_array_equal(curve.radii, radii)
    # And it is the mean of ||W u|| over the directions u drawn from the seeded generator.
    u = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=DT)
    u = u / u.norm(dim=1, keepdim=True)
    expected = (u @ enc.weight.detach().t()).norm(dim=1).mean()
    assert curve.ratio[0] == pytest.approx(float(expected), rel=1e-9)


def test_contraction_ratio_matches_its_definition_on_a_nonlinear_encoder() -> None:
    enc = nn.Sequential(nn.Linear(6, 4), nn.Sigmoid())
    x = torch.rand(9, 6)
    r = 0.7
    curve = contraction_ratio(enc, x, [r], seed=5)
    u = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=DT)
    u = u / u.norm(dim=1, keepdim=True)
    encd = _double(enc)
    xd = x.to(DT)
    with torch.no_grad():
        expected = ((encd(xd + r * u) - encd(xd)).norm(dim=1) / r).mean()
    assert curve.ratio[0] == pytest.approx(float(expected), rel=1e-10)


def test_contraction_ratio_tends_to_the_jacobian_along_the_direction() -> None:
    model, x = _make("deep-mlp")
    curve = contraction_ratio(model, x, [1e-6], seed=1)
    u = torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
    u = u / u.norm(dim=1, keepdim=True)
    ju = torch.einsum("bij,bj->bi", brute_jacobians(model, x), u).norm(dim=1).mean()
    assert curve.ratio[0] == pytest.approx(float(ju), rel=1e-5)


def test_contraction_ratio_is_deterministic_under_a_seed() -> None:
    enc = nn.Sequential(nn.Linear(6, 4), nn.Tanh())
    x = torch.rand(9, 6)
    a = contraction_ratio(enc, x, [0.1, 1.0], seed=2)
    b = contraction_ratio(enc, x, [0.1, 1.0], seed=2)
    c = contraction_ratio(enc, x, [0.1, 1.0], seed=4)
    np.testing.assert_array_equal(a.ratio, b.ratio)
    assert not np.array_equal(a.ratio, c.ratio)


def test_default_radii_span_1e_minus_3_to_1e2_of_the_median_distance() -> None:
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 10.0]])  # distances 5, 10, sqrt(45)
    r = default_radii(x, n=6)
    np.testing.assert_allclose(r, math.sqrt(45) * np.array([1e-3, 1e-2, 1e-1, 1.0, 1e1, 1e2]))
    # By default four radii a decade, with 1, 10 and 100 times the median among them.
    r = default_radii(x)
    assert r.shape == (21,)
    np.testing.assert_allclose(r[[0, 12, 16, 20]], math.sqrt(45) * np.array([1e-3, 1, 10, 100]))


@pytest.mark.parametrize("activation", ["sigmoid", "tanh"])
def test_default_radii_reach_the_saturated_regime(activation: str) -> None:
    # A bounded code moves by at most sqrt(d_h) (sigmoid) or 2 sqrt(d_h) (tanh) in all, so
    # ratio(r) <= bound / r, and at the largest default radius the ratio has fallen from its
    # small-radius value, even though x1 there is far outside [0, 1].
    model = mlp_autoencoder([30, 8], activation=activation)
    x = torch.rand(50, 30)
    curve = contraction_ratio(model, x)
    reach = math.sqrt(8) * (1.0 if activation == "sigmoid" else 2.0)
    assert np.all(curve.ratio <= reach / curve.radii)
    assert curve.ratio[-1] < 0.2 * curve.ratio[0]
    # The small radii are in the linear regime: the ratio has not moved yet.
    assert curve.ratio[4] == pytest.approx(curve.ratio[0], rel=1e-3)


@pytest.mark.parametrize(
    ("activation", "bias", "expected"),
    [
        ("sigmoid", 12.0, 1.0),
        ("sigmoid", -12.0, 1.0),
        ("sigmoid", 0.0, 0.0),
        ("tanh", 12.0, 1.0),
        ("tanh", -12.0, 1.0),
        ("tanh", 0.0, 0.0),
    ],
)
def test_saturation_of_a_constant_code(activation: str, bias: float, expected: float) -> None:
    model = mlp_autoencoder([5, 4], activation=activation)
    with torch.no_grad():
        model.encoder[0].weight.zero_()
        model.encoder[0].bias.fill_(bias)
    assert saturation(model, torch.rand(7, 5), batch_size=3) == expected


def test_saturation_counts_units_at_the_thresholds() -> None:
    # Sigmoid code with units at 0.04, 0.06, 0.94, 0.96 (through their logits): 2 of 4.
    enc = nn.Sequential(nn.Linear(3, 4), nn.Sigmoid())
    with torch.no_grad():
        enc[0].weight.zero_()
        enc[0].bias.copy_(torch.logit(torch.tensor([0.04, 0.06, 0.94, 0.96])))
    assert saturation(enc, torch.rand(5, 3)) == 0.5
    # tanh: |h| > 0.9, i.e. the same relative thresholds.
    enc_t = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
    with torch.no_grad():
        enc_t[0].weight.zero_()
        enc_t[0].bias.copy_(torch.atanh(torch.tensor([-0.95, -0.85, 0.85, 0.95])))
    assert saturation(enc_t, torch.rand(5, 3)) == 0.5


@pytest.mark.parametrize("activation", ["relu", "softplus", "identity", "elu"])
def test_saturation_is_none_for_unbounded_codes(activation: str) -> None:
    assert saturation(mlp_autoencoder([5, 4], activation=activation), torch.rand(3, 5)) is None


def test_mean_jacobian_norm_of_a_linear_encoder_is_frobenius_of_w() -> None:
    enc = nn.Linear(6, 3).to(DT)
    expected = float(torch.linalg.matrix_norm(enc.weight.detach()))
    assert mean_jacobian_norm(enc, torch.rand(10, 6, dtype=DT), batch_size=3) == pytest.approx(
        expected, rel=1e-12
    )


def test_mean_jacobian_norm_averages_per_sample_norms() -> None:
    model, x = _make("dense-sigmoid")
    per = brute_jacobians(model, x).flatten(1).norm(dim=1)
    assert mean_jacobian_norm(model, x, batch_size=3) == pytest.approx(float(per.mean()))


# ---------------------------------------------------------------------------------------------
# Any encoder the library builds: against brute-force Jacobians.


@pytest.mark.parametrize("name", sorted(MODELS))
def test_encoder_jacobian_matches_autograd(name: str) -> None:
    model, x = _make(name)
    expected = brute_jacobians(model, x)
    got = encoder_jacobian(model, x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(jacobian_norms(model, x), expected.flatten(1).norm(dim=1))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_singular_values_and_tangents_match_the_svd_of_the_brute_jacobian(name: str) -> None:
    model, x = _make(name)
    jac = brute_jacobians(model, x)
    _, s, vh = torch.linalg.svd(jac, full_matrices=False)
    # Square roots of the eigenvalues of the k x k Gram matrix of the (k, d) Jacobian. Forming
    # it and its eigensolver each err by about (k + d) * eps * ||J||_F^2 on every eigenvalue,
    # and sqrt turns that into an absolute error of up to sqrt((k + d) * eps) * ||J||_F on a
    # singular value near zero (the conv encoder has some). The 1e-8 * s_max used before is
    # below that error: it failed under other CPU kernels, which round the Jacobian otherwise.
    k, d = sorted(jac.shape[1:])
    atol = math.sqrt((k + d) * torch.finfo(DT).eps) * float(jac.flatten(1).norm(dim=1).max())
    torch.testing.assert_close(singular_values(model, x), s, rtol=1e-7, atol=atol)
    np.testing.assert_allclose(jacobian_spectrum(model, x), s.mean(dim=0).numpy(), atol=atol)
    k = 3
    t = tangent_directions(model, x, k=k)
    torch.testing.assert_close(t.values, s[:, :k])
    # Equal up to sign: |<v_got, v_ref>| = 1 for each direction (values here are distinct).
    dots = torch.einsum("bkd,bkd->bk", t.vectors, vh[:, :k]).abs()
    torch.testing.assert_close(dots, torch.ones_like(dots), rtol=0, atol=1e-8)
    # Sign convention: the largest-magnitude entry of each vector is positive.
    peaks = t.vectors.gather(2, t.vectors.abs().argmax(dim=2, keepdim=True))
    assert bool((peaks > 0).all())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_jjt_product_equals_the_explicit_product(name: str) -> None:
    model, x = _make(name)
    jac = brute_jacobians(model, x)  # (B, d_h, d_x)
    code = _encoder_fn(model)(x)
    alpha = torch.randn(code.shape, dtype=DT)
    expected = torch.einsum("bij,bkj,bk->bi", jac, jac, alpha.flatten(1))
    got = jjt_product(model, x, alpha)
    assert got.shape == code.shape
    torch.testing.assert_close(got.flatten(1), expected, rtol=1e-10, atol=1e-12)


def test_jjt_product_generic_path_agrees_with_the_dense_shortcut() -> None:
    model = mlp_autoencoder([8, 5], activation="sigmoid").to(DT)
    x = torch.rand(3, 8, dtype=DT)
    alpha = torch.randn(3, 5, dtype=DT)
    dense = jjt_product(model, x, alpha)
    # With an Identity in between the encoder is not the dense form: the torch.func path.
    wrapped = nn.Sequential(nn.Sequential(model.encoder[0]), nn.Identity(), model.encoder[1])
    torch.testing.assert_close(jjt_product(wrapped, x, alpha), dense)
    # One sigmoid layer: J J^T = diag(s) W W^T diag(s), s = h (1 - h).
    h = model.encode(x)
    s = h * (1 - h)
    w = model.encoder[0].weight
    torch.testing.assert_close(dense, s * ((s * alpha) @ w @ w.t()))


def test_analyze_collects_every_metric() -> None:
    model, x = _make("dense-sigmoid")
    a = analyze(model, x, radii=[0.1, 1.0], seed=0)
    assert isinstance(a, Analysis)
    assert a.n_points == 4
    assert a.mean_jacobian_norm == pytest.approx(mean_jacobian_norm(model, x))
    assert a.saturation == saturation(model, x)
    np.testing.assert_array_equal(
        a.contraction.ratio, contraction_ratio(model, x, [0.1, 1.0]).ratio
    )
    np.testing.assert_array_equal(a.spectrum, jacobian_spectrum(model, x))
    assert 1 <= a.n_significant() <= a.spectrum.size
    assert a.spectrum_points == 4
    # The spectrum can be averaged over the first points only, to bound its cost.
    b = analyze(model, x, radii=[0.1], spectrum_points=2)
    assert b.spectrum_points == 2
    np.testing.assert_array_equal(b.spectrum, jacobian_spectrum(model, x[:2]))
    assert analyze(model, x, radii=[0.1], spectrum_points=10).spectrum_points == 4
    with pytest.raises(ConfigError, match=r"'spectrum_points' parameter must be an int .*Got 0"):
        analyze(model, x, spectrum_points=0)


def test_n_significant_counts_values_above_the_fraction() -> None:
    curve = ContractionCurve(np.ones(1), np.ones(1))
    a = Analysis(1, 1.0, None, curve, np.array([4.0, 1.0, 0.41, 0.39, 0.0]))
    assert a.n_significant() == 3
    assert a.n_significant(0.5) == 1
    assert Analysis(1, 0.0, None, curve, np.zeros(3)).n_significant() == 0


def test_numpy_input_is_accepted() -> None:
    model = mlp_autoencoder([6, 3])
    x = np.random.default_rng(0).random((5, 6))
    assert encoder_jacobian(model, x).shape == (5, 3, 6)
    assert isinstance(mean_jacobian_norm(model, x), float)


# ---------------------------------------------------------------------------------------------
# Sampling.


@pytest.mark.parametrize("name", ["dense-sigmoid", "deep-mlp", "conv"])
def test_sample_chain_shapes_and_start(name: str) -> None:
    model, x = _make(name)
    chain = sample_chain(model, x, sigma=0.3, steps=4, seed=0)  # type: ignore[arg-type]
    assert chain.shape == (5, 4, x[0].numel())
    assert chain.dtype == np.float32
    np.testing.assert_allclose(chain[0], x.numpy(), rtol=1e-6)
    assert np.all((chain[1:] >= 0) & (chain[1:] <= 1))  # sigmoid output


def test_sample_chain_is_deterministic_under_a_seed() -> None:
    model = mlp_autoencoder([10, 6])
    x = torch.rand(3, 10)
    a = sample_chain(model, x, sigma=0.5, steps=3, seed=7)
    b = sample_chain(model, x, sigma=0.5, steps=3, seed=7)
    c = sample_chain(model, x, sigma=0.5, steps=3, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_sample_chain_step_is_decode_of_code_plus_jjt_alpha() -> None:
    model = mlp_autoencoder([10, 6]).to(DT)
    x = torch.rand(3, 10, dtype=DT)
    chain = sample_chain(model, x, sigma=0.4, steps=1, seed=11)
    alpha = 0.4 * torch.randn((3, 6), generator=torch.Generator().manual_seed(11))
    jac = brute_jacobians(model, x)
    h = model.encode(x)
    expected = model.decode(h + torch.einsum("bij,bkj,bk->bi", jac, jac, alpha.to(DT)))
    np.testing.assert_allclose(chain[1], expected.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_sample_chain_with_zero_sigma_iterates_the_reconstruction() -> None:
    model = mlp_autoencoder([10, 6])
    x = torch.rand(2, 10)
    chain = sample_chain(model, x, sigma=0.0, steps=2)
    with torch.no_grad():
        once = model(x).x_hat
        twice = model(once).x_hat
    np.testing.assert_allclose(chain[1], once.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chain[2], twice.numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Errors.


def test_errors_name_the_parameter_and_the_value() -> None:
    model = mlp_autoencoder([6, 3])
    x = torch.rand(4, 6)
    with pytest.raises(ConfigError, match=r"'sigma' parameter must be a float in the range \[0"):
        sample_chain(model, x, sigma=-1.0)
    with pytest.raises(ConfigError, match=r"'steps' parameter must be an int in the range \[1"):
        sample_chain(model, x, steps=0)
    with pytest.raises(ConfigError, match="sample_chain must be an Autoencoder .*Sequential"):
        sample_chain(model.encoder, x)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'k' parameter must be at most min\(d_h, d_x\) = 3"):
        tangent_directions(model, x, k=4)
    with pytest.raises(ConfigError, match="'radii' parameter must be a non-empty 1-D sequence"):
        contraction_ratio(model, x, [0.1, -1.0])
    with pytest.raises(ConfigError, match="'radii' parameter"):
        contraction_ratio(model, x, [])
    with pytest.raises(ConfigError, match=r"'x' parameter must be a batch .*Got shape \(6,\)"):
        encoder_jacobian(model, torch.rand(6))
    with pytest.raises(ConfigError, match="'X' parameter must be a Tensor or a numpy array"):
        mean_jacobian_norm(model, [[0.0] * 6])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'model' parameter must be an Autoencoder or an enc"):
        saturation("model", x)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'batch_size' parameter must be an int .*Got 0"):
        jacobian_spectrum(model, x, batch_size=0)


def test_module_exports_are_documented() -> None:
    for name in analysis.__all__:
        obj = getattr(analysis, name)
        if callable(obj):
            assert obj.__doc__, name


# Moved from tests/test_evaluate.py when the read-outs got one home here.


def _sigmoid_codes(h: Tensor) -> tuple[nn.Module, Tensor]:
    """An encoder and inputs whose codes are ``h``: a sigmoid on the logits of ``h``."""
    return nn.Sequential(nn.Identity(), nn.Sigmoid()), torch.logit(h.double())


def test_saturation_known_cases() -> None:
    for value, expected in ((0.999, 1.0), (0.001, 1.0), (0.5, 0.0)):
        assert saturation(*_sigmoid_codes(torch.full((5, 4), value))) == expected
    h = torch.tensor([[0.01, 0.5, 0.99, 0.5], [0.02, 0.03, 0.97, 0.5]])
    assert saturation(*_sigmoid_codes(h)) == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert saturation(*_sigmoid_codes(torch.tensor([[0.04, 0.06]]))) == 0.5


def test_saturation_errors() -> None:
    enc = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid())
    with pytest.raises(ConfigError, match=r"'X' parameter must be a batch .* Got shape \(4,\)"):
        saturation(enc, torch.rand(4))
    with pytest.raises(ConfigError, match=r"'batch_size' parameter must be an int in the range"):
        saturation(enc, torch.rand(2, 4), batch_size=0)


def test_saturation_of_a_trained_encoder_matches_the_definition() -> None:
    enc = nn.Sequential(nn.Linear(6, 50), nn.Sigmoid())
    with torch.no_grad():
        enc[0].weight.mul_(30)
    X = torch.rand(40, 6)
    h = enc(X).detach()
    per_example = [sum(float(v < 0.05 or v > 0.95) for v in row) / 50 for row in h.tolist()]
    assert saturation(enc, X, batch_size=7) == pytest.approx(sum(per_example) / 40)


def test_mean_jacobian_norm_of_a_bare_linear_encoder_is_the_frobenius_norm_of_w() -> None:
    lin = nn.Linear(7, 5)
    X = torch.rand(30, 7)
    expected = float(torch.linalg.matrix_norm(lin.weight.detach()))
    assert mean_jacobian_norm(lin, X) == pytest.approx(expected, rel=1e-5)
    assert mean_jacobian_norm(nn.Sequential(lin), X) == pytest.approx(expected, rel=1e-5)


def _brute_force_norms(f: nn.Module, X: Tensor) -> list[float]:
    f = f.double()
    return [
        float(torch.linalg.matrix_norm(torch.autograd.functional.jacobian(f, x.double())))
        for x in X
    ]


def test_mean_jacobian_norm_of_a_sigmoid_layer_and_a_stack() -> None:
    from contractive.evaluate import stack_encoder

    ae1, ae2 = mlp_autoencoder([9, 6]), mlp_autoencoder([6, 4])
    X = torch.rand(12, 9)
    one = _brute_force_norms(stack_encoder(ae1), X)
    assert mean_jacobian_norm(ae1, X, batch_size=5) == pytest.approx(np.mean(one), rel=1e-5)
    two = _brute_force_norms(stack_encoder([ae1, ae2]), X)
    got = mean_jacobian_norm(stack_encoder([ae1, ae2]), X)  # two layers: the exact Jacobian
    assert got == pytest.approx(np.mean(two), rel=1e-5)


def test_mean_jacobian_norm_errors() -> None:
    with pytest.raises(ConfigError, match=r"'batch_size' parameter must be an int in the range"):
        mean_jacobian_norm(nn.Linear(2, 2), torch.rand(3, 2), batch_size=0)
    with pytest.raises(ConfigError, match=r"'X' parameter must be a batch .* Got shape \(0, 2\)"):
        mean_jacobian_norm(nn.Linear(2, 2), torch.rand(0, 2))
