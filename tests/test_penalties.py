"""Tests of contractive.penalties against brute-force Jacobians from torch.autograd.

Every reference value here is computed independently of the code under test: per-sample
Jacobians come from ``torch.autograd.functional.jacobian`` (float64, ``create_graph=True`` so
that their squared norms can be differentiated with respect to the encoder's parameters),
or from closed forms written out in the test.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Callable, Sequence

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

import contractive
from contractive import penalties, penalties_analytic
from contractive.exceptions import UnsupportedEncoderError
from contractive.losses import reconstruction_loss
from contractive.nn import ACTIVATIONS, conv_autoencoder, make_activation, mlp_autoencoder
from contractive.penalties import (
    analytic_supported,
    encode_with_penalty,
    higher_order_penalty,
    jacobian_penalty,
)

DT = torch.float64
RTOL = 1e-6

# torch itself warns when forward-mode AD first loads its decompositions.
pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning"),
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(20110628)


# ---------------------------------------------------------------------------------------------
# Brute-force references and comparison helpers.


def brute_jacobians(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """Per-sample Jacobians ``(B, d_out, d_in)`` of ``f``, one autograd call per sample.

    ``create_graph=True``: the result is differentiable w.r.t. ``f``'s parameters and ``x``.
    """
    jacs = []
    for i in range(x.shape[0]):

        def fi(z: Tensor) -> Tensor:
            return f(z.unsqueeze(0)).reshape(-1)

        j = torch.autograd.functional.jacobian(fi, x[i], create_graph=True, vectorize=True)
        jacs.append(j.reshape(j.shape[0], -1))
    return torch.stack(jacs)


def brute_penalty(f: Callable[[Tensor], Tensor], x: Tensor) -> Tensor:
    """``||J_f(x_b)||_F^2`` per sample, from autograd."""
    return brute_jacobians(f, x).pow(2).sum(dim=(1, 2))


def grads(out: Tensor, inputs: Sequence[Tensor]) -> tuple[Tensor, ...]:
    return torch.autograd.grad(
        out, list(inputs), allow_unused=True, materialize_grads=True, retain_graph=True
    )


def assert_rel_close(actual: Tensor, expected: Tensor, rtol: float = RTOL, atol: float = 0.0):
    """Elementwise ``|actual - expected| <= rtol * |expected| + atol``."""
    actual, expected = actual.detach(), expected.detach()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = (actual - expected).abs()
    ok = err <= rtol * expected.abs() + atol
    worst = (err / expected.abs().clamp_min(1e-300)).max().item() if err.numel() else 0.0
    assert bool(ok.all()), f"max relative error {worst:.3e}\n{actual}\n{expected}"


def assert_grads_close(actual: Sequence[Tensor], expected: Sequence[Tensor], rtol: float = RTOL):
    """Each gradient matches in norm: ``||g - g_ref|| <= rtol * ||g_ref||`` (+ a tiny floor)."""
    assert len(actual) == len(expected)
    for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
        assert a.shape == e.shape
        err = (a - e).norm().item()
        assert err <= rtol * e.norm().item() + 1e-13, (k, err, e.norm().item(), a, e)


def sample_weights(b: int) -> Tensor:
    """Random per-sample weights: the gradient of sum_b c_b p_b checks every p_b's gradient."""
    return torch.randn(b, dtype=DT)


# ---------------------------------------------------------------------------------------------
# Activations and affine layers covered by the analytic path.

EXTRA_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu6": nn.ReLU6,
    "celu_0.7": lambda: nn.CELU(alpha=0.7),
    "selu": nn.SELU,
    "gelu_tanh": lambda: nn.GELU(approximate="tanh"),
    "silu": nn.SiLU,
    "mish": nn.Mish,
    "hardtanh": nn.Hardtanh,
    "hardtanh_-1.5_0.5": lambda: nn.Hardtanh(min_val=-1.5, max_val=0.5),
    "softsign": nn.Softsign,
    "logsigmoid": nn.LogSigmoid,
    "tanhshrink": nn.Tanhshrink,
    "hardsigmoid": nn.Hardsigmoid,
    "hardswish": nn.Hardswish,
    # threshold / beta = 0.5: both the sigmoid(beta a) and the identity branch are hit.
    "softplus_beta2_thr1": lambda: nn.Softplus(beta=2.0, threshold=1.0),
    "leaky_relu_0.2": lambda: nn.LeakyReLU(0.2),
    "elu_0.5": lambda: nn.ELU(alpha=0.5),
}
ALL_ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    **{name: (lambda n=name: make_activation(n)) for name in ACTIVATIONS},
    **EXTRA_ACTIVATIONS,
}


def kinks(act: nn.Module) -> list[float]:
    """Points where s' or s'' jumps; no pre-activation may sit on one."""
    t = type(act)
    if t in (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.Softsign):
        return [0.0]
    if t is nn.ReLU6:
        return [0.0, 6.0]
    if t is nn.Hardtanh:
        return [float(act.min_val), float(act.max_val)]
    if t in (nn.Hardsigmoid, nn.Hardswish):
        return [-3.0, 3.0]
    if t is nn.Softplus:
        return [float(act.threshold) / float(act.beta)]
    return []


def must_cover(k: float) -> bool:
    """Kinks near the origin must have pre-activations on both sides (not Softplus's 20)."""
    return abs(k) <= 10.0


def draw_input(
    affine: nn.Module,
    act: nn.Module,
    shape: tuple[int, ...],
    *,
    scale: float = 4.0,
    sampler: Callable[[tuple[int, ...], torch.Generator], Tensor] | None = None,
    margin: float = 1e-3,
    seed: int = 0,
) -> Tensor:
    """An input whose pre-activations are all at least ``margin`` away from every kink, with
    pre-activations on both sides of each kink (so every branch of s' is exercised)."""
    g = torch.Generator().manual_seed(seed)
    points = kinks(act)
    for _ in range(500):
        if sampler is None:
            x = scale * torch.randn(shape, generator=g, dtype=DT)
        else:
            x = sampler(shape, g)
        with torch.no_grad():
            a = affine(x)
        if all(
            bool((a - k).abs().min() > margin)
            and (not must_cover(k) or (bool((a < k).any()) and bool((a > k).any())))
            for k in points
        ):
            return x
    raise AssertionError("could not draw an input away from the kinks")


class _Composite(nn.Module):
    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, a: Tensor) -> Tensor:
        return self.fn(a)


# torch has no double backward for these; the reference differentiates a composite twin.
_TWINS: dict[type[nn.Module], Callable[[Tensor], Tensor]] = {
    nn.Hardsigmoid: lambda a: torch.clamp(a + 3.0, 0.0, 6.0) / 6.0,
}


def differentiable_twin(enc: nn.Sequential) -> nn.Sequential:
    """``enc`` with activations lacking double backward replaced by composite formulas."""
    return nn.Sequential(*(_Composite(_TWINS[type(m)]) if type(m) in _TWINS else m for m in enc))


def input_scale(act: nn.Module) -> float:
    return 8.0 if type(act) is nn.ReLU6 else 4.0


LAYERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "linear": (lambda: nn.Linear(5, 4), (5,)),
    "linear_nobias": (lambda: nn.Linear(5, 4, bias=False), (5,)),
    "conv2d_stride_pad": (lambda: nn.Conv2d(2, 3, 3, stride=2, padding=1), (2, 5, 5)),
    "conv2d_dilation": (
        lambda: nn.Conv2d(2, 2, 3, stride=(1, 2), padding=2, dilation=2),
        (2, 5, 4),
    ),
    "conv2d_groups_nobias": (
        lambda: nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2, bias=False),
        (4, 5, 5),
    ),
    "conv2d_same": (lambda: nn.Conv2d(2, 2, (2, 3), padding="same"), (2, 4, 4)),
    "conv1d": (lambda: nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 7)),
    "conv3d": (lambda: nn.Conv3d(1, 2, 3, stride=2, padding=1), (1, 4, 4, 4)),
}


def test_activation_table_covers_every_supported_derivative():
    """The parametrisation below reaches every module type the analytic path knows."""
    covered = {type(factory()) for factory in ALL_ACTIVATIONS.values()}
    assert set(penalties_analytic._DERIVATIVES) <= covered


@pytest.mark.parametrize("layer_id", list(LAYERS))
@pytest.mark.parametrize("act_id", list(ALL_ACTIVATIONS))
def test_analytic_matches_brute_force(act_id: str, layer_id: str):
    factory, in_shape = LAYERS[layer_id]
    act = ALL_ACTIVATIONS[act_id]()
    enc = nn.Sequential(factory(), act).to(DT)
    x = draw_input(enc[0], act, (3, *in_shape), scale=input_scale(act)).requires_grad_()

    pen = jacobian_penalty(enc, x, method="analytic")
    ref = brute_penalty(enc, x)
    assert pen.shape == (3,)
    assert ref.sum() > 0
    assert_rel_close(pen, ref)

    twin = differentiable_twin(enc)
    torch.testing.assert_close(twin(x), enc(x), rtol=1e-15, atol=1e-15)
    c = sample_weights(3)
    inputs = [*enc.parameters(), x]
    expected = grads((brute_penalty(twin, x) * c).sum(), inputs)
    assert expected[0].norm() > 0  # the penalty reaches the weight
    assert_grads_close(grads((pen * c).sum(), inputs), expected)


def test_softplus_case_hits_both_branches():
    """The threshold of the Softplus case is small enough for the identity branch to be hit."""
    act = EXTRA_ACTIVATIONS["softplus_beta2_thr1"]()
    for factory, in_shape in LAYERS.values():
        affine = factory().to(DT)
        x = draw_input(affine, act, (3, *in_shape))
        with torch.no_grad():
            a = affine(x)
        assert bool((a * act.beta > act.threshold).any())
        assert bool((a * act.beta < act.threshold).any())


# ---------------------------------------------------------------------------------------------
# Autoencoders from the builders, tied and untied.


def build(kind: str, activation: str, tied: bool):
    if kind == "mlp":
        return mlp_autoencoder([6, 4], activation=activation, tied=tied).to(DT)
    return conv_autoencoder(
        (1, 5, 5), [3], kernel_size=3, stride=2, padding=1, activation=activation, tied=tied
    ).to(DT)


def unit_sampler(shape: tuple[int, ...], g: torch.Generator) -> Tensor:
    return torch.rand(shape, generator=g, dtype=DT)


def ae_input(model, kind: str) -> Tensor:
    shape = (3, 6) if kind == "mlp" else (3, 1, 5, 5)
    x = draw_input(model.encoder[0], model.encoder[1], shape, sampler=unit_sampler)
    return x.reshape(3, -1)


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_autoencoder_penalty_and_total_gradient(name: str, kind: str, tied: bool):
    torch.manual_seed(11)
    model = build(kind, name, tied)
    x = ae_input(model, kind)
    xe = model.prepare(x)

    pen = jacobian_penalty(model.encoder, xe, method="analytic")
    ref = brute_penalty(model.encoder, xe)
    assert_rel_close(pen, ref)

    lam = 0.3
    recon = reconstruction_loss(model(x), x)
    params = list(model.parameters())
    g_total = grads(recon.mean() + lam * pen.mean(), params)
    g_recon = grads(recon.mean(), params)
    g_pen = grads(ref.mean(), params)
    assert_grads_close(g_total, [r + lam * p for r, p in zip(g_recon, g_pen, strict=True)])

    weight = model.encoder[0].weight
    k = next(i for i, p in enumerate(params) if p is weight)
    assert g_pen[k].norm() > 0  # the penalty trains the (shared, if tied) weight
    assert g_recon[k].norm() > 0
    # Nothing in the decoder gets a penalty gradient.
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    for p, g in zip(params, g_pen, strict=True):
        if id(p) not in encoder_ids:
            assert bool((g == 0).all())


@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_tying_does_not_change_encoder_penalty(name: str, kind: str):
    torch.manual_seed(5)
    tied = build(kind, name, True)
    torch.manual_seed(5)
    untied = build(kind, name, False)
    for (k1, v1), (k2, v2) in zip(
        tied.encoder.state_dict().items(), untied.encoder.state_dict().items(), strict=True
    ):
        assert k1 == k2
        assert torch.equal(v1, v2)
    x = tied.prepare(ae_input(tied, kind))
    for method in ("analytic", "exact"):
        p_tied = jacobian_penalty(tied.encoder, x, method=method)
        p_untied = jacobian_penalty(untied.encoder, x, method=method)
        torch.testing.assert_close(p_tied, p_untied, rtol=1e-12, atol=0)


# ---------------------------------------------------------------------------------------------
# Convolution borders.


@pytest.mark.parametrize("act", ["identity", "relu"])
def test_conv_padding_gives_border_units_smaller_rows(act: str):
    """With zero padding the border units see fewer input pixels, so their Jacobian rows are
    shorter; the penalty is below n_out * ||kernel||^2 and equals a closed form."""
    n = 4
    conv = nn.Conv2d(1, 1, 3, padding=1).to(DT)
    with torch.no_grad():
        conv.weight.copy_(torch.rand(1, 1, 3, 3, dtype=DT) + 0.1)  # > 0
        conv.bias.fill_(0.5)
    enc = nn.Sequential(conv, make_activation(act))
    x = torch.rand(2, 1, n, n, dtype=DT)  # > 0, so every pre-activation is > 0: s' = 1

    pen = jacobian_penalty(enc, x, method="analytic")
    jac = brute_jacobians(enc, x)
    assert_rel_close(pen, jac.pow(2).sum(dim=(1, 2)))

    w = conv.weight[0, 0].detach()
    k2 = w.pow(2).sum()
    assert bool((pen < n * n * k2).all())
    # Tap (u, v) at offset (u - 1, v - 1) stays inside the image at (n - |du|)(n - |dv|) outputs.
    closed = sum(
        w[u, v] ** 2 * (n - abs(u - 1)) * (n - abs(v - 1)) for u in range(3) for v in range(3)
    )
    assert_rel_close(pen, closed.expand(2))
    rows = jac[0].pow(2).sum(dim=1).reshape(n, n)
    assert_rel_close(rows[1:3, 1:3], k2.expand(2, 2))  # interior: the whole kernel
    assert_rel_close(rows[0, 0], w[1:, 1:].pow(2).sum())  # corner: a 2 x 2 part of it
    assert_rel_close(rows[0, 1], w[1:, :].pow(2).sum())  # edge: a 2 x 3 part of it


# ---------------------------------------------------------------------------------------------
# encode_with_penalty.

ENCODERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], tuple[str, ...]]] = {
    "linear_tanh": (
        lambda: nn.Sequential(nn.Linear(5, 4), nn.Tanh()),
        (5,),
        ("auto", "analytic", "exact", "hutchinson", "layerwise"),
    ),
    "linear_softplus": (
        lambda: nn.Sequential(nn.Linear(5, 4), nn.Softplus()),
        (5,),
        ("auto", "analytic", "exact", "hutchinson", "layerwise"),
    ),
    "conv_sigmoid": (
        lambda: nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.Sigmoid()),
        (1, 5, 5),
        ("auto", "analytic", "exact", "hutchinson", "layerwise"),
    ),
    "mlp2": (
        lambda: nn.Sequential(nn.Linear(5, 6), nn.Softplus(), nn.Linear(6, 3), nn.Sigmoid()),
        (5,),
        ("auto", "exact", "hutchinson", "layerwise"),
    ),
    "conv2_flatten": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 2, 3, stride=2, padding=1),
            nn.Tanh(),
            nn.Conv2d(2, 3, 3, stride=2, padding=1),
            nn.ELU(),
            nn.Flatten(),
        ),
        (1, 6, 6),
        ("auto", "exact", "hutchinson", "layerwise"),
    ),
}
ENCODER_METHODS = [(e, m) for e, (_, _, methods) in ENCODERS.items() for m in methods]


@pytest.mark.parametrize(("enc_id", "method"), ENCODER_METHODS)
def test_encode_with_penalty_code_and_penalty(enc_id: str, method: str):
    factory, in_shape, _ = ENCODERS[enc_id]
    enc = factory().to(DT)
    x = torch.randn(4, *in_shape, dtype=DT)
    h, pen = encode_with_penalty(
        enc, x, method=method, probes=3, generator=torch.Generator().manual_seed(9)
    )
    ref_h = enc(x)
    assert h.shape == ref_h.shape
    torch.testing.assert_close(h, ref_h, rtol=1e-12, atol=1e-14)
    same = jacobian_penalty(
        enc, x, method=method, probes=3, generator=torch.Generator().manual_seed(9)
    )
    assert pen.shape == (4,)
    assert torch.equal(pen, same)
    # The code carries the same gradient as encoder(x): the reconstruction trains the encoder.
    c = torch.randn_like(ref_h)
    params = list(enc.parameters())
    expected = grads((ref_h * c).sum(), params)
    assert_grads_close(grads((h * c).sum(), params), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["analytic", "auto"])
def test_analytic_code_with_trailing_flatten(method: str):
    enc = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2, padding=1), nn.Sigmoid(), nn.Flatten())
    enc = enc.to(DT)
    x = torch.randn(3, 1, 5, 5, dtype=DT)
    assert analytic_supported(enc)
    h, pen = encode_with_penalty(enc, x, method=method)
    assert_rel_close(pen, brute_penalty(enc, x))  # the penalty itself is right
    assert h.shape == enc(x).shape  # fails: (3, 2, 3, 3) instead of (3, 18)


@pytest.mark.parametrize("method", ["analytic", "auto"])
@pytest.mark.parametrize(
    ("factory", "x_shape"),
    [
        (lambda: nn.Sequential(nn.Flatten(), nn.Linear(12, 5), nn.Tanh()), (3, 3, 4)),
        (
            lambda: nn.Sequential(nn.Unflatten(1, (1, 5, 5)), nn.Conv2d(1, 2, 3), nn.Sigmoid()),
            (3, 25),
        ),
    ],
    ids=["flatten_linear", "unflatten_conv"],
)
def test_analytic_with_leading_reshape(factory, x_shape: tuple[int, ...], method: str):
    enc = factory().to(DT)
    x = torch.randn(*x_shape, dtype=DT)
    assert analytic_supported(enc)
    h, pen = encode_with_penalty(enc, x, method=method)
    assert_rel_close(pen, brute_penalty(enc, x))
    torch.testing.assert_close(h, enc(x))


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus"])
def test_analytic_linear_on_sequence_input(act: str):
    enc = nn.Sequential(nn.Linear(4, 3), make_activation(act)).to(DT)
    x = torch.randn(2, 5, 4, dtype=DT)
    pen = jacobian_penalty(enc, x, method="analytic")
    ref = brute_penalty(enc, x)
    assert_rel_close(pen, ref)  # passes
    c = sample_weights(2)
    params = list(enc.parameters())
    assert_grads_close(grads((pen * c).sum(), params), grads((ref * c).sum(), params))


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus"])
@pytest.mark.parametrize("bias", [True, False])
def test_analytic_linear_joint_gradient_of_code_and_penalty(act: str, bias: bool):
    # Training differentiates code and penalty together; the Linear + sigmoid/tanh layer is
    # one fused Function whose backward combines both, so check the sum, w.r.t. x as well.
    enc = nn.Sequential(nn.Linear(5, 4, bias=bias), make_activation(act)).to(DT)
    x = torch.randn(3, 5, dtype=DT, requires_grad=True)
    c, d = torch.randn(3, 4, dtype=DT), sample_weights(3)
    h, pen = encode_with_penalty(enc, x, method="analytic")
    inputs = [x, *enc.parameters()]
    expected = grads((enc(x) * c).sum() + (brute_penalty(enc, x) * d).sum(), inputs)
    assert_grads_close(grads((h * c).sum() + (pen * d).sum(), inputs), expected)
    # Either output alone (the other's gradient is None in the backward).
    assert_grads_close(grads((h * c).sum(), inputs), grads((enc(x) * c).sum(), inputs))
    assert_grads_close(
        grads((pen * d).sum(), inputs), grads((brute_penalty(enc, x) * d).sum(), inputs)
    )


@pytest.mark.parametrize("act", ["sigmoid", "tanh"])
def test_analytic_linear_joint_second_order_gradient(act: str):
    enc = nn.Sequential(nn.Linear(4, 3), make_activation(act)).to(DT)
    x = torch.randn(3, 4, dtype=DT, requires_grad=True)
    weight = enc[0].weight
    c, v, u = torch.randn(3, 3, dtype=DT), torch.randn_like(weight), torch.randn_like(x)

    def hvps(h: Tensor, pen: Tensor) -> list[Tensor]:
        g_w, g_x = torch.autograd.grad((h * c).sum() + pen.sum(), [weight, x], create_graph=True)
        return list(torch.autograd.grad((g_w * v).sum() + (g_x * u).sum(), [weight, x]))

    expected = hvps(enc(x), brute_penalty(enc, x))
    assert_grads_close(hvps(*encode_with_penalty(enc, x, method="analytic")), expected)


@pytest.mark.parametrize("act", ["sigmoid", "softplus"])
@pytest.mark.parametrize("layer", ["linear", "conv"])
def test_analytic_under_cpu_autocast(act: str, layer: str):
    # bf16 autocast: the Linear skips its fused Function; both paths still train.
    torch.manual_seed(0)
    affine = nn.Linear(6, 5) if layer == "linear" else nn.Conv2d(1, 2, 3)
    enc = nn.Sequential(affine, make_activation(act))
    x = torch.rand(4, 6) if layer == "linear" else torch.rand(4, 1, 5, 5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h, pen = encode_with_penalty(enc, x, method="analytic")
    assert h.dtype == torch.bfloat16
    _, ref = encode_with_penalty(enc, x, method="analytic")
    torch.testing.assert_close(pen.float(), ref, rtol=2e-2, atol=1e-3)
    (h.float().sum() + pen.float().sum()).backward()
    assert affine.weight.grad is not None
    assert torch.isfinite(affine.weight.grad).all()


def hvp_wrt_weight(pen: Tensor, weight: Tensor, v: Tensor) -> Tensor:
    """Hessian-vector product of ``pen.sum()`` w.r.t. ``weight`` (double backward)."""
    (g,) = torch.autograd.grad(pen.sum(), weight, create_graph=True)
    (hv,) = torch.autograd.grad((g * v).sum(), weight)
    return hv


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus"])
def test_analytic_conv_second_order_gradient_matches_brute_force(act: str):
    enc = nn.Sequential(nn.Conv1d(1, 2, 2), make_activation(act)).to(DT)
    x = torch.randn(3, 1, 4, dtype=DT)
    weight = enc[0].weight
    v = torch.randn_like(weight)
    expected = hvp_wrt_weight(brute_penalty(enc, x), weight, v)
    actual = hvp_wrt_weight(jacobian_penalty(enc, x, method="analytic"), weight, v)
    assert_grads_close([actual], [expected])


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus"])
def test_analytic_linear_second_order_gradient_matches_brute_force(act: str):
    enc = nn.Sequential(nn.Linear(4, 3), make_activation(act)).to(DT)
    x = torch.randn(3, 4, dtype=DT)
    weight = enc[0].weight
    v = torch.randn_like(weight)
    expected = hvp_wrt_weight(brute_penalty(enc, x), weight, v)
    actual = hvp_wrt_weight(jacobian_penalty(enc, x, method="analytic"), weight, v)
    assert_grads_close([actual], [expected])


# ---------------------------------------------------------------------------------------------
# method="exact".

EXACT_ENCODERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], str]] = {
    # d_in = 6 > d_out = 4: reverse mode.
    "mlp3_mixed_jacrev": (
        lambda: nn.Sequential(
            nn.Linear(6, 7),
            nn.Tanh(),
            nn.Linear(7, 5),
            nn.Softplus(),
            nn.Linear(5, 4),
            nn.Sigmoid(),
        ),
        (6,),
        "jacrev",
    ),
    # d_in = 3 < d_out = 7: forward mode.
    "mlp3_mixed_jacfwd": (
        lambda: nn.Sequential(
            nn.Linear(3, 6), nn.ELU(), nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 7), nn.SiLU()
        ),
        (3,),
        "jacfwd",
    ),
    # d_in = 64 > d_out = 3 * 2 * 2.
    "conv2_flatten_jacrev": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 2, 3, stride=2, padding=1),
            nn.Tanh(),
            nn.Conv2d(2, 3, 3, stride=2, padding=1),
            nn.Sigmoid(),
            nn.Flatten(),
        ),
        (1, 8, 8),
        "jacrev",
    ),
    # d_in = 16 < d_out = 20 * 1 * 1.
    "conv2_jacfwd": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 6, 3, stride=2, padding=1),
            nn.Softplus(),
            nn.Conv2d(6, 20, 3, stride=2, padding=1),
            nn.Tanh(),
        ),
        (1, 4, 4),
        "jacfwd",
    ),
}


def spy_jacobian_transforms(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record which of torch.func.jacfwd / jacrev the exact method builds."""
    calls: list[str] = []
    for name in ("jacfwd", "jacrev"):
        original = getattr(torch.func, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch.func, name, spy)
    return calls


def spy_vmap_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the batch size of every call of the vmapped Jacobian (one per chunk)."""
    sizes: list[int] = []
    original = torch.func.vmap

    def spy(fn, *args, **kwargs):
        batched = original(fn, *args, **kwargs)

        def wrapper(xb: Tensor):
            sizes.append(xb.shape[0])
            return batched(xb)

        return wrapper

    monkeypatch.setattr(torch.func, "vmap", spy)
    return sizes


@pytest.mark.parametrize("enc_id", list(EXACT_ENCODERS))
def test_exact_matches_brute_force(enc_id: str, monkeypatch: pytest.MonkeyPatch):
    factory, in_shape, branch = EXACT_ENCODERS[enc_id]
    enc = factory().to(DT)
    x = torch.randn(3, *in_shape, dtype=DT)
    calls = spy_jacobian_transforms(monkeypatch)
    pen = jacobian_penalty(enc, x, method="exact")
    assert calls == [branch]
    ref = brute_penalty(enc, x)
    assert_rel_close(pen, ref)
    c = sample_weights(3)
    params = list(enc.parameters())
    expected = grads((ref * c).sum(), params)
    assert all(g.norm() > 0 for g in expected)
    assert_grads_close(grads((pen * c).sum(), params), expected)


@pytest.mark.parametrize("enc_id", ["mlp3_mixed_jacrev", "conv2_jacfwd"])
@pytest.mark.parametrize(("chunk_samples", "expected_sizes"), [(1, [1] * 5), (2, [2, 2, 1])])
def test_exact_chunking_gives_the_same_result(
    enc_id: str, chunk_samples: int, expected_sizes: list[int], monkeypatch: pytest.MonkeyPatch
):
    factory, in_shape, _ = EXACT_ENCODERS[enc_id]
    enc = factory().to(DT)
    x = torch.randn(5, *in_shape, dtype=DT)
    c = sample_weights(5)
    params = list(enc.parameters())

    sizes = spy_vmap_batches(monkeypatch)
    h_ref, pen_ref = encode_with_penalty(enc, x, method="exact")
    assert sizes == [5]  # the default bound holds the whole batch in one chunk
    g_ref = grads((pen_ref * c).sum(), params)

    d_in = math.prod(in_shape)
    d_out = enc(x[:1]).numel()
    monkeypatch.setattr(penalties, "EXACT_CHUNK_ELEMENTS", chunk_samples * d_in * d_out)
    sizes.clear()
    h, pen = encode_with_penalty(enc, x, method="exact")
    assert sizes == expected_sizes
    torch.testing.assert_close(h, h_ref, rtol=1e-12, atol=1e-14)
    assert_rel_close(pen, pen_ref, rtol=1e-12)
    assert_grads_close(grads((pen * c).sum(), params), g_ref, rtol=1e-12)


def test_exact_chunk_smaller_than_one_jacobian_still_works(monkeypatch: pytest.MonkeyPatch):
    factory, in_shape, _ = EXACT_ENCODERS["mlp3_mixed_jacrev"]
    enc = factory().to(DT)
    x = torch.randn(3, *in_shape, dtype=DT)
    monkeypatch.setattr(penalties, "EXACT_CHUNK_ELEMENTS", 1)
    sizes = spy_vmap_batches(monkeypatch)
    pen = jacobian_penalty(enc, x, method="exact")
    assert sizes == [1, 1, 1]
    assert_rel_close(pen, brute_penalty(enc, x))


# ---------------------------------------------------------------------------------------------
# method="hutchinson".
#
# The estimators are checked exactly where they can be: with the Rademacher draws replaced by
# chosen sign vectors, averaging over all of them (or over the rows of a Hadamard matrix,
# whose second moment is the identity too) gives the expected value and the variance with no
# sampling error. The random draws themselves are checked apart, with bounds that fair draws
# break with a probability of at most about 1e-6 whatever the stream (another torch build
# need not draw the same signs from a seed).


def hutch_setup() -> tuple[nn.Module, Tensor, Tensor]:
    """A 2-layer encoder with d_in = 4 (16 sign vectors), its input and exact Jacobians."""
    torch.manual_seed(3)
    enc = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Sigmoid()).to(DT)
    x = torch.randn(3, 4, dtype=DT)
    return enc, x, brute_jacobians(enc, x).detach()


def hutch_draws(enc: nn.Module, x: Tensor, n: int) -> Tensor:
    """``(n, B)`` single-probe estimates, one generator seed each."""
    with torch.no_grad():
        return torch.stack(
            [
                jacobian_penalty(
                    enc, x, method="hutchinson", generator=torch.Generator().manual_seed(s)
                )
                for s in range(n)
            ]
        )


def rademacher_variance(jac: Tensor) -> Tensor:
    """Variance of v^T A v for Rademacher v, A = J^T J: 2 sum_{i != j} A_ij^2."""
    a = jac.transpose(1, 2) @ jac
    return 2.0 * (a.pow(2).sum(dim=(1, 2)) - torch.diagonal(a, dim1=1, dim2=2).pow(2).sum(1))


def all_signs(d: int) -> Tensor:
    """The ``2^d`` sign vectors of R^d, ``(2^d, d)``: Rademacher draws, each as likely."""
    return torch.tensor(list(itertools.product([-1.0, 1.0], repeat=d)), dtype=DT)


def hadamard_signs(d: int) -> Tensor:
    """``(m, d)`` sign vectors with ``(1/m) sum_k v_k v_k^T = I``: the rows of an ``m x m``
    Sylvester-Hadamard matrix (``H^T H = m I``, m the power of 2 >= d) cut to d columns.
    Any quadratic form ``v^T A v`` averages to ``trace(A)`` over them, as over all signs."""
    h = torch.ones(1, 1, dtype=DT)
    while h.shape[0] < d:
        h = torch.cat([torch.cat([h, h], dim=1), torch.cat([h, -h], dim=1)])
    return h[:, :d]


def use_probes(monkeypatch: pytest.MonkeyPatch, *per_probe: Tensor) -> None:
    """Make the next Hutchinson draws ``per_probe[k]`` (one flat sign vector) for probe k of
    every sample, in place of random signs; the generator then only draws the corruptions."""

    def chosen(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
        rows = shape[0] // len(per_probe)  # probe-major, as the estimators lay them out
        v = torch.cat([p.reshape(1, *shape[1:]).expand(rows, *shape[1:]) for p in per_probe])
        return v.to(dtype=like.dtype, device=like.device).clone()

    monkeypatch.setattr(penalties, "_rademacher", chosen)


def record_probes(monkeypatch: pytest.MonkeyPatch) -> list[Tensor]:
    """The sign vectors the Hutchinson methods draw, as they draw them."""
    drawn: list[Tensor] = []
    real = penalties._rademacher

    def recording(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
        v = real(shape, like, generator)
        drawn.append(v.clone())
        return v

    monkeypatch.setattr(penalties, "_rademacher", recording)
    return drawn


def test_hutchinson_single_probe_is_a_rademacher_quadratic_form():
    enc, x, jac = hutch_setup()
    signs = all_signs(4)  # (16, 4)
    forms = (jac @ signs.T).pow(2).sum(dim=1)  # (B, 16): ||J v||^2 for every sign vector
    # Averaging over all sign vectors gives ||J||_F^2 exactly: E[v v^T] = I.
    assert_rel_close(forms.mean(dim=1), jac.pow(2).sum(dim=(1, 2)), rtol=1e-12)
    ests = hutch_draws(enc, x, 40)
    gap = (forms[None, :, :] - ests[:, :, None]).abs().min(dim=2).values
    assert bool((gap <= 1e-12 * forms.max()).all())
    # Not a constant: 40 draws of 8 equally likely values (v and -v agree) are all equal with
    # probability 8^-39.
    assert all(len(set(ests[:, b].tolist())) > 1 for b in range(3))


def test_hutchinson_is_unbiased_with_the_documented_variance(monkeypatch: pytest.MonkeyPatch):
    # The estimate for each of the 16 sign vectors, all equally likely: its exact distribution.
    enc, x, jac = hutch_setup()
    signs = all_signs(4)
    ests = []
    for v in signs:
        use_probes(monkeypatch, v)
        ests.append(jacobian_penalty(enc, x, method="hutchinson").detach())
    per_sign = torch.stack(ests)  # (16, B)
    assert_rel_close(per_sign, (jac @ signs.T).pow(2).sum(dim=1).T, rtol=1e-12)
    assert_rel_close(per_sign.mean(dim=0), jac.pow(2).sum(dim=(1, 2)), rtol=1e-12)
    assert_rel_close(per_sign.var(dim=0, correction=0), rademacher_variance(jac), rtol=1e-9)


def test_hutchinson_draws_average_to_the_exact_penalty():
    # The real draws, end to end. The estimate takes 8 values at most 2.1 standard deviations
    # from its mean here, so by Bernstein's inequality the mean of 400 independent draws is
    # more than 6 standard errors off with probability below 7e-7 per sample, for any stream
    # of fair signs.
    enc, x, jac = hutch_setup()
    exact = jac.pow(2).sum(dim=(1, 2))
    n = 400
    se = (rademacher_variance(jac) / n).sqrt()
    mean = hutch_draws(enc, x, n).mean(dim=0)
    assert bool(((mean - exact).abs() < 6 * se).all()), (mean, exact, se)


def test_hutchinson_probes_are_independent_fair_signs(monkeypatch: pytest.MonkeyPatch):
    drawn = record_probes(monkeypatch)
    enc, _, _ = hutch_setup()
    n = 40_000
    x = torch.randn(n // 2, 4, dtype=DT)
    g = torch.Generator().manual_seed(0)
    jacobian_penalty(enc, x, method="hutchinson", probes=2, generator=g)
    (v,) = drawn
    assert v.shape == (n, 4)
    assert v.dtype == DT
    assert set(v.unique().tolist()) == {-1.0, 1.0}
    # Two consecutive rows (samples) at a time: each of the 256 sign patterns of 8 entries has
    # probability 1/256 when every entry is a fair sign independent of the others. All counts
    # are within 7 binomial standard errors of 78 but with probability 4e-8 (the binomial
    # tails summed over the patterns); two equal rows in a row would leave most patterns at 0.
    pattern = ((v.reshape(n // 2, 8) > 0).long() * 2 ** torch.arange(8)).sum(dim=1)
    counts = torch.bincount(pattern, minlength=256).double()
    p = 1 / 256
    assert bool(((counts - n / 2 * p).abs() < 7 * math.sqrt(n / 2 * p * (1 - p))).all())


@pytest.mark.parametrize("probes", [4, 16])
def test_hutchinson_probes_average_single_probe_estimates(
    monkeypatch: pytest.MonkeyPatch, probes: int
):
    # P probes average P single-probe estimates, each from its own independent fair signs
    # (test above): the variance is divided by P.
    drawn = record_probes(monkeypatch)
    enc, x, jac = hutch_setup()
    est = jacobian_penalty(
        enc, x, method="hutchinson", probes=probes, generator=torch.Generator().manual_seed(1)
    )
    (v,) = drawn
    assert v.shape == (probes * 3, 4)
    per_probe = (v.reshape(probes, 3, 1, 4) @ jac.transpose(1, 2)).pow(2).sum(dim=(2, 3))
    assert_rel_close(est, per_probe.mean(dim=0), rtol=1e-12)


def test_hutchinson_two_probes_halve_the_variance(monkeypatch: pytest.MonkeyPatch):
    # Exactly: over all 16 x 16 pairs of sign vectors.
    enc, x, jac = hutch_setup()
    signs = all_signs(4)
    ests = []
    for v1, v2 in itertools.product(signs, signs):
        use_probes(monkeypatch, v1, v2)
        ests.append(jacobian_penalty(enc, x, method="hutchinson", probes=2).detach())
    per_pair = torch.stack(ests)  # (256, B)
    assert_rel_close(per_pair.mean(dim=0), jac.pow(2).sum(dim=(1, 2)), rtol=1e-12)
    assert_rel_close(per_pair.var(dim=0, correction=0), rademacher_variance(jac) / 2, rtol=1e-9)


def test_hutchinson_is_reproducible_with_a_seed():
    enc, x, _ = hutch_setup()

    def estimate(seed: int, probes: int = 2) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return jacobian_penalty(enc, x, method="hutchinson", probes=probes, generator=g)

    assert torch.equal(estimate(7), estimate(7))
    assert not torch.equal(estimate(7), estimate(8))
    # Without a generator the global seed decides.
    torch.manual_seed(42)
    first = jacobian_penalty(enc, x, method="hutchinson")
    torch.manual_seed(42)
    assert torch.equal(first, jacobian_penalty(enc, x, method="hutchinson"))


def test_hutchinson_gradient_is_unbiased(monkeypatch: pytest.MonkeyPatch):
    # Exactly, over the 16 sign vectors. One vector is shared by the samples here, where each
    # has its own in training: p_b depends on sample b's signs alone, so by linearity the mean
    # gradient of sum_b c_b p_b over a shared vector is its expectation all the same.
    enc, x, _ = hutch_setup()
    params = list(enc.parameters())
    c = sample_weights(3)
    expected = torch.cat([g.reshape(-1) for g in grads((brute_penalty(enc, x) * c).sum(), params)])
    draws = []
    for v in all_signs(4):
        use_probes(monkeypatch, v)
        pen = jacobian_penalty(enc, x, method="hutchinson")
        draws.append(torch.cat([d.reshape(-1) for d in grads((pen * c).sum(), params)]))
    stack = torch.stack(draws)
    assert len({tuple(d.tolist()) for d in stack}) > 1  # the signs matter to the gradient
    assert_rel_close(stack.mean(dim=0), expected, rtol=1e-9, atol=1e-12 * expected.abs().max())


# ---------------------------------------------------------------------------------------------
# method="auto".


def two_layer(d_in: int, d_hidden: int, d_out: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(d_in, d_hidden), nn.Tanh(), nn.Linear(d_hidden, d_out), nn.Sigmoid()
    ).to(DT)


def forced(enc: nn.Module, x: Tensor, method: str, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return jacobian_penalty(enc, x, method=method, generator=g)


def test_auto_picks_analytic_for_one_layer(monkeypatch: pytest.MonkeyPatch):
    enc = nn.Sequential(nn.Linear(6, 5), nn.Softplus()).to(DT)
    x = torch.randn(4, 6, dtype=DT)
    assert torch.equal(forced(enc, x, "auto"), forced(enc, x, "analytic"))
    # Even when the Jacobian would be "large", one layer stays analytic (exact, not a guess).
    monkeypatch.setattr(penalties, "AUTO_EXACT_MAX_PASSES", 0)
    auto = forced(enc, x, "auto")
    assert torch.equal(auto, forced(enc, x, "analytic"))
    assert not torch.allclose(auto, forced(enc, x, "hutchinson"))
    assert_rel_close(auto, brute_penalty(enc, x))


@pytest.mark.parametrize(
    ("max_passes", "expected"), [(64, "exact"), (3, "exact"), (2, "hutchinson")]
)
def test_auto_threshold_between_exact_and_hutchinson(
    max_passes: int, expected: str, monkeypatch: pytest.MonkeyPatch
):
    enc = two_layer(6, 5, 3)  # min(d_in, d_out) = 3
    x = torch.randn(4, 6, dtype=DT)
    monkeypatch.setattr(penalties, "AUTO_EXACT_MAX_PASSES", max_passes)
    other = "hutchinson" if expected == "exact" else "exact"
    auto = forced(enc, x, "auto")
    assert torch.equal(auto, forced(enc, x, expected))
    assert not torch.allclose(auto, forced(enc, x, other))


def test_auto_picks_hutchinson_for_large_jacobians():
    enc = two_layer(70, 8, 66)  # min(70, 66) > AUTO_EXACT_MAX_PASSES = 64
    x = torch.randn(2, 70, dtype=DT)
    auto = forced(enc, x, "auto", seed=3)
    assert torch.equal(auto, forced(enc, x, "hutchinson", seed=3))
    assert not torch.allclose(auto, forced(enc, x, "exact"))


def test_auto_falls_back_to_exact_for_unsupported_small_encoders():
    enc = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)).to(DT)
    x = torch.randn(3, 4, dtype=DT)
    assert not analytic_supported(enc)
    auto = forced(enc, x, "auto")
    assert torch.equal(auto, forced(enc, x, "exact"))
    assert_rel_close(auto, brute_penalty(enc, x))


# ---------------------------------------------------------------------------------------------
# method="layerwise".

# (factory, input shape, groups): each group is the indices of one layer's modules and whether
# it is penalised (an affine + activation layer) or only reshapes.
LAYERWISE: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...], list]] = {
    "mlp2": (
        lambda: nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3), nn.Sigmoid()),
        (5,),
        [((0, 1), True), ((2, 3), True)],
    ),
    "mlp3_no_inner_activation": (
        lambda: nn.Sequential(
            nn.Linear(5, 6), nn.Linear(6, 4), nn.Softplus(), nn.Linear(4, 3), nn.GELU()
        ),
        (5,),
        [((0,), True), ((1, 2), True), ((3, 4), True)],
    ),
    "conv_flatten_linear": (
        lambda: nn.Sequential(
            nn.Conv2d(1, 2, 3, stride=2, padding=1),
            nn.Tanh(),
            nn.Flatten(),
            nn.Linear(18, 4),
            nn.Sigmoid(),
        ),
        (1, 5, 5),
        [((0, 1), True), ((2,), False), ((3, 4), True)],
    ),
    "nested_sequential": (
        lambda: nn.Sequential(
            nn.Sequential(nn.Linear(4, 5), nn.ELU()), nn.Sequential(nn.Linear(5, 3), nn.Tanh())
        ),
        (4,),
        None,
    ),
}


def brute_layerwise(enc: nn.Sequential, x: Tensor, groups) -> Tensor:
    """Sum over layers of ||J_layer(h_in)||_F^2, each w.r.t. that layer's own input."""
    total = torch.zeros(x.shape[0], dtype=x.dtype)
    h = x
    if groups is None:  # a Sequential of Sequential layers
        parts = [(layer, True) for layer in enc]
    else:
        parts = [(nn.Sequential(*(enc[i] for i in idx)), pen) for idx, pen in groups]
    for layer, penalised in parts:
        if penalised:
            total = total + brute_penalty(layer, h)
        h = layer(h)
    return total


@pytest.mark.parametrize("enc_id", list(LAYERWISE))
def test_layerwise_matches_per_layer_brute_force(enc_id: str):
    factory, in_shape, groups = LAYERWISE[enc_id]
    enc = factory().to(DT)
    x = torch.randn(3, *in_shape, dtype=DT)
    h, pen = encode_with_penalty(enc, x, method="layerwise")
    torch.testing.assert_close(h, enc(x), rtol=1e-12, atol=1e-14)
    ref = brute_layerwise(enc, x, groups)
    assert_rel_close(pen, ref)
    c = sample_weights(3)
    params = list(enc.parameters())
    expected = grads((ref * c).sum(), params)
    assert_grads_close(grads((pen * c).sum(), params), expected)
    # Earlier layers get gradient also through the later layers' inputs.
    assert expected[0].norm() > 0


@pytest.mark.parametrize("enc_id", ["mlp2", "conv_flatten_linear", "nested_sequential"])
def test_layerwise_differs_from_end_to_end(enc_id: str):
    factory, in_shape, _ = LAYERWISE[enc_id]
    enc = factory().to(DT)
    x = torch.randn(3, *in_shape, dtype=DT)
    layerwise = jacobian_penalty(enc, x, method="layerwise")
    end_to_end = brute_penalty(enc, x)
    assert_rel_close(jacobian_penalty(enc, x, method="exact"), end_to_end)
    assert bool(((layerwise - end_to_end).abs() > 1e-3 * end_to_end).all())


@pytest.mark.parametrize(
    ("factory", "in_shape"),
    [
        (lambda: nn.Sequential(nn.Linear(5, 4), nn.Tanh()), (5,)),
        (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), nn.Softplus()), (2, 5, 5)),
        (lambda: nn.Linear(5, 4), (5,)),
    ],
    ids=["linear_tanh", "conv_softplus", "bare_linear"],
)
def test_layerwise_equals_analytic_for_one_layer(factory, in_shape: tuple[int, ...]):
    enc = factory().to(DT)
    x = torch.randn(3, *in_shape, dtype=DT)
    layerwise = jacobian_penalty(enc, x, method="layerwise")
    analytic = jacobian_penalty(enc, x, method="analytic")
    torch.testing.assert_close(layerwise, analytic, rtol=1e-14, atol=0)
    assert_rel_close(layerwise, brute_penalty(enc, x))


# ---------------------------------------------------------------------------------------------
# CAE+H: higher_order_penalty.


def brute_higher_order(
    enc: nn.Module, x: Tensor, *, sigma: float, corruptions: int, seed: int
) -> Tensor:
    """mean_k ||J(x) - J(x + sigma eps_k)||_F^2 with eps drawn as documented."""
    g = torch.Generator().manual_seed(seed)
    b = x.shape[0]
    eps = torch.randn((corruptions * b, *x.shape[1:]), generator=g, dtype=x.dtype)
    x_tilde = x.repeat(corruptions, *([1] * (x.dim() - 1))) + sigma * eps
    j_clean = brute_jacobians(enc, x)
    j_tilde = brute_jacobians(enc, x_tilde)
    diff = (j_clean.repeat(corruptions, 1, 1) - j_tilde).pow(2).sum(dim=(1, 2))
    return diff.reshape(corruptions, b).mean(dim=0)


CAEH_ENCODERS: dict[str, tuple[Callable[[str], nn.Module], tuple[int, ...]]] = {
    "linear": (lambda act: nn.Sequential(nn.Linear(5, 4), make_activation(act)), (5,)),
    "conv2d": (
        lambda act: nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1), make_activation(act)),
        (2, 5, 5),
    ),
}


@pytest.mark.parametrize("method", ["analytic", "exact", "auto"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "softplus", "elu", "gelu", "relu"])
@pytest.mark.parametrize("enc_id", list(CAEH_ENCODERS))
def test_higher_order_matches_brute_force(enc_id: str, act: str, method: str):
    factory, in_shape = CAEH_ENCODERS[enc_id]
    enc = factory(act).to(DT)
    x = torch.randn(3, *in_shape, dtype=DT)
    kw = {"sigma": 0.7, "corruptions": 3}
    pen = higher_order_penalty(
        enc, x, **kw, generator=torch.Generator().manual_seed(4), method=method
    )
    ref = brute_higher_order(enc, x, **kw, seed=4)
    assert pen.shape == (3,)
    assert bool((ref > 0).all())
    assert_rel_close(pen, ref)
    c = sample_weights(3)
    params = list(enc.parameters())
    expected = grads((ref * c).sum(), params)
    assert expected[0].norm() > 0
    assert_grads_close(grads((pen * c).sum(), params), expected)


def test_higher_order_exact_matches_brute_force_for_two_layers():
    enc = two_layer(4, 5, 3)
    x = torch.randn(3, 4, dtype=DT)
    pen = higher_order_penalty(
        enc, x, sigma=0.5, corruptions=2, generator=torch.Generator().manual_seed(2), method="exact"
    )
    ref = brute_higher_order(enc, x, sigma=0.5, corruptions=2, seed=2)
    assert_rel_close(pen, ref)
    c = sample_weights(3)
    params = list(enc.parameters())
    assert_grads_close(grads((pen * c).sum(), params), grads((ref * c).sum(), params))


def test_higher_order_depends_on_the_corruption_seed():
    enc = two_layer(4, 5, 3)
    x = torch.randn(3, 4, dtype=DT)

    def run(seed: int) -> Tensor:
        g = torch.Generator().manual_seed(seed)
        return higher_order_penalty(enc, x, sigma=0.5, corruptions=2, generator=g, method="exact")

    assert torch.equal(run(1), run(1))
    assert not torch.allclose(run(1), run(2))


@pytest.mark.parametrize(
    ("enc_id", "factory", "in_shape"),
    [
        ("mlp2", lambda: two_layer(4, 5, 3), (4,)),
        ("conv", lambda: CAEH_ENCODERS["conv2d"][0]("tanh").to(DT), (2, 5, 5)),
    ],
)
def test_higher_order_hutchinson_is_unbiased(
    monkeypatch: pytest.MonkeyPatch, enc_id: str, factory, in_shape: tuple[int, ...]
):
    """Paired by seed: the corruptions are drawn first, so hutchinson and exact with the same
    seed see the same x~. Averaged over sign vectors whose second moment is the identity (a
    Hadamard matrix's rows: 4 for the mlp, 64 for the 50 inputs of the conv), the Hutchinson
    value is the exact one, for each seed; the random signs are checked on their own above."""
    enc = factory()
    x = torch.randn(3, *in_shape, dtype=DT)
    kw = {"sigma": 0.5, "corruptions": 2}
    signs = hadamard_signs(math.prod(in_shape))
    with torch.no_grad():
        for seed in range(3):
            exact = higher_order_penalty(
                enc, x, **kw, generator=torch.Generator().manual_seed(seed), method="exact"
            )
            ests = []
            for v in signs:
                use_probes(monkeypatch, v)
                ests.append(
                    higher_order_penalty(
                        enc,
                        x,
                        **kw,
                        generator=torch.Generator().manual_seed(seed),
                        method="hutchinson",
                    )
                )
            per_sign = torch.stack(ests)
            assert bool((per_sign.std(dim=0) > 0).all())  # the signs matter
            assert_rel_close(per_sign.mean(dim=0), exact, rtol=1e-9)


@pytest.mark.parametrize("method", ["auto", "analytic", "exact", "hutchinson"])
@pytest.mark.parametrize(
    ("factory", "in_shape"),
    [
        (lambda: nn.Linear(5, 4), (5,)),
        (lambda: nn.Sequential(nn.Linear(5, 4), nn.Identity()), (5,)),
        (lambda: nn.Sequential(nn.Conv2d(2, 3, 3, stride=2, padding=1)), (2, 5, 5)),
        (lambda: nn.Sequential(nn.Linear(5, 6), nn.Linear(6, 3)), (5,)),
    ],
    ids=["bare_linear", "linear_identity", "conv", "two_linear"],
)
def test_higher_order_of_a_linear_encoder_is_zero(factory, in_shape, method: str):
    enc = factory().to(DT)
    if method == "analytic" and not analytic_supported(enc):
        with pytest.raises(UnsupportedEncoderError, match="encoder has 2 affine layers"):
            higher_order_penalty(
                enc, torch.zeros(1, *in_shape, dtype=DT), sigma=1.0, corruptions=1, method=method
            )
        return
    x = torch.randn(3, *in_shape, dtype=DT)
    pen = higher_order_penalty(
        enc, x, sigma=1.0, corruptions=2, generator=torch.Generator().manual_seed(0), method=method
    )
    assert pen.shape == (3,)
    torch.testing.assert_close(pen, torch.zeros(3, dtype=DT), rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Errors.


class Square(nn.Module):
    def forward(self, a: Tensor) -> Tensor:
        return a * a


class MyLinear(nn.Linear):
    pass


class MyTanh(nn.Tanh):
    pass


SECOND_LAYER = re.escape(
    "method='analytic' needs one affine layer and one elementwise activation, but the encoder "
    "has 2 affine layers (Linear(in_features=3, out_features=2, bias=True) is the second). "
    "Use method='exact' or method='hutchinson'"
)


@pytest.mark.parametrize(
    "enc",
    [
        nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2), nn.Sigmoid()),
        mlp_autoencoder([4, 3, 2]).encoder,
    ],
    ids=["sequential", "mlp_autoencoder"],
)
def test_analytic_rejects_two_layers(enc: nn.Module):
    x = torch.randn(2, 4)
    with pytest.raises(UnsupportedEncoderError, match=SECOND_LAYER):
        jacobian_penalty(enc, x, method="analytic")
    with pytest.raises(UnsupportedEncoderError, match=SECOND_LAYER):
        higher_order_penalty(enc, x, sigma=0.1, corruptions=1, method="analytic")
    assert not analytic_supported(enc)


def _cannot(module: str, why: str) -> str:
    return re.escape(f"method='analytic' cannot handle {module}: {why}. Use method='exact'")


@pytest.mark.parametrize(
    ("enc", "x_shape", "match"),
    [
        (
            nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)),
            (2, 4),
            _cannot(
                "Softmax(dim=1)", "it is not an elementwise activation with a known derivative"
            ),
        ),
        (
            nn.Sequential(nn.Linear(4, 3), Square()),
            (2, 4),
            _cannot("Square()", "it is not an elementwise activation with a known derivative"),
        ),
        (
            nn.Sequential(nn.Linear(4, 3), MyTanh()),
            (2, 4),
            _cannot("MyTanh()", "it is not an elementwise activation with a known derivative"),
        ),
        (
            nn.Sequential(MyLinear(4, 3), nn.Tanh()),
            (2, 4),
            _cannot(
                "MyLinear(in_features=4, out_features=3, bias=True)",
                "it is a subclass whose forward may differ",
            ),
        ),
        (
            nn.Sequential(nn.Tanh(), nn.Linear(4, 3)),
            (2, 4),
            _cannot("Tanh()", "expected nn.Linear or nn.Conv1d/2d/3d here"),
        ),
        (
            nn.Sequential(nn.Flatten()),
            (2, 4),
            _cannot(
                "Sequential(\n  (0): Flatten(start_dim=1, end_dim=-1)\n)", "it has no affine layer"
            ),
        ),
    ]
    + [
        (
            nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode=mode), nn.Sigmoid()),
            (2, 1, 5, 5),
            re.escape(f"padding_mode='{mode}' repeats input pixels in a row. Use method='exact'"),
        )
        for mode in ("reflect", "replicate", "circular")
    ],
    ids=[
        "softmax",
        "custom_module",
        "activation_subclass",
        "linear_subclass",
        "activation_first",
        "no_affine",
        "reflect",
        "replicate",
        "circular",
    ],
)
def test_analytic_rejects_unsupported_modules(enc: nn.Module, x_shape, match: str):
    x = torch.randn(*x_shape)
    assert not analytic_supported(enc)
    for method in ("analytic", "layerwise"):
        with pytest.raises(UnsupportedEncoderError, match=match):
            jacobian_penalty(enc, x, method=method)
    with pytest.raises(UnsupportedEncoderError, match=match):
        higher_order_penalty(enc, x, sigma=0.1, corruptions=1, method="analytic")
    # UnsupportedEncoderError is also a ValueError and a ContractiveError.
    with pytest.raises(ValueError, match=match):
        jacobian_penalty(enc, x, method="analytic")
    with pytest.raises(contractive.ContractiveError, match=match):
        jacobian_penalty(enc, x, method="analytic")


def test_unsupported_modules_still_work_with_exact():
    enc = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Sigmoid())
    enc = enc.to(DT)
    x = torch.randn(2, 1, 4, 4, dtype=DT)
    assert_rel_close(jacobian_penalty(enc, x, method="exact"), brute_penalty(enc, x))


BAD_METHOD = re.escape(
    "The 'method' parameter must be a str among {'auto', 'analytic', 'exact', 'hutchinson', "
    "'layerwise'}. Got 'foo' instead."
)


def test_bad_method_name():
    enc = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    x = torch.randn(2, 4)
    with pytest.raises(ValueError, match=BAD_METHOD):
        jacobian_penalty(enc, x, method="foo")
    with pytest.raises(ValueError, match=BAD_METHOD):
        encode_with_penalty(enc, x, method="foo")
    with pytest.raises(ValueError, match=BAD_METHOD):
        higher_order_penalty(enc, x, sigma=0.1, corruptions=1, method="foo")
    with pytest.raises(
        ValueError, match=re.escape("higher_order_penalty does not support method='layerwise'.")
    ):
        higher_order_penalty(enc, x, sigma=0.1, corruptions=1, method="layerwise")


@pytest.mark.parametrize("probes", [0, -1, 1.5, True, "2"])
@pytest.mark.parametrize("method", ["hutchinson", "auto", "analytic"])
def test_bad_probes(probes, method: str):
    enc = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"The 'probes' parameter must be an int in the range [1, inf). Got {probes!r} instead."
        ),
    ):
        jacobian_penalty(enc, torch.randn(2, 4), method=method, probes=probes)


@pytest.mark.parametrize("sigma", [0, 0.0, -0.5, float("nan"), float("inf"), "0.1", None])
def test_bad_sigma(sigma):
    enc = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    with pytest.raises(
        ValueError,
        match=re.escape(
            f"The 'sigma' parameter must be a float in the range (0, inf). Got {sigma!r} instead."
        ),
    ):
        higher_order_penalty(enc, torch.randn(2, 4), sigma=sigma, corruptions=1)


@pytest.mark.parametrize("corruptions", [0, -2, 2.0, True])
def test_bad_corruptions(corruptions):
    enc = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    with pytest.raises(
        ValueError,
        match=re.escape(
            "The 'corruptions' parameter must be an int in the range [1, inf). "
            f"Got {corruptions!r} instead."
        ),
    ):
        higher_order_penalty(enc, torch.randn(2, 4), sigma=0.1, corruptions=corruptions)


def test_conv_input_without_batch_dimension_is_rejected():
    """Conv2d itself accepts an unbatched (C, H, W) image; the penalty needs a batch."""
    enc = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Identity())
    match = re.escape(
        "needs input of shape (batch, channels, 2 spatial dims); got shape (1, 5, 5)."
    )
    with pytest.raises(ValueError, match=match):
        jacobian_penalty(enc, torch.randn(1, 5, 5), method="analytic")


# ---------------------------------------------------------------------------------------------
# Property test: analytic vs brute force over random shapes, activations and dtypes.


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    act_id=st.sampled_from(sorted(ALL_ACTIVATIONS)),
    conv=st.booleans(),
    bias=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    batch=st.integers(1, 3),
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 4),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 2),
    extra=st.integers(0, 3),
    pad=st.integers(0, 2),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_analytic_matches_brute_force(
    act_id, conv, bias, dtype, batch, c_in, c_out, kernel, stride, extra, pad, seed
):
    torch.manual_seed(seed)
    act = ALL_ACTIVATIONS[act_id]()
    if conv:
        affine = nn.Conv2d(
            c_in, c_out, kernel, stride=stride, padding=min(pad, kernel - 1), bias=bias
        )
        in_shape: tuple[int, ...] = (c_in, kernel + extra, kernel + extra + 1)
    else:
        affine = nn.Linear(c_in + extra, c_out, bias=bias)
        in_shape = (c_in + extra,)
    enc64 = nn.Sequential(affine, act).to(DT)
    try:
        x64 = draw_input(enc64[0], act, (batch, *in_shape), scale=2.0, seed=seed % 1000)
    except AssertionError:
        assume(False)
    enc = copy.deepcopy(enc64).to(dtype)
    x = x64.to(dtype)

    pen = jacobian_penalty(enc, x, method="analytic")
    assert pen.dtype == dtype
    assert pen.shape == (batch,)
    ref = brute_penalty(enc64, x64)
    rtol = 1e-6 if dtype == torch.float64 else 1e-4
    assert_rel_close(pen.double(), ref, rtol=rtol, atol=rtol * 1e-3 * ref.detach().max().item())

    twin = differentiable_twin(enc64)
    params64 = list(enc64.parameters())
    expected = grads(brute_penalty(twin, x64).sum(), params64)
    actual = grads(pen.sum(), list(enc.parameters()))
    scale = max(float(e.norm()) for e in expected)
    for a, e in zip(actual, expected, strict=True):
        assert float((a.double() - e).norm()) <= rtol * 10 * scale + 1e-12


# ---------------------------------------------------------------------------------------------
# The hand-carried tangent of the Hutchinson method against forward-mode AD.


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4), nn.GELU()),
        lambda: nn.Sequential(
            nn.Unflatten(1, (1, 6, 6)), nn.Conv2d(1, 3, 3, stride=2), nn.ELU(), nn.Flatten()
        ),
        lambda: nn.Sequential(nn.Linear(36, 4), nn.LayerNorm(4)),  # not a stack: forward AD
    ],
    ids=["mlp", "conv-with-reshapes", "fallback"],
)
def test_jvp_matches_forward_mode_ad(make: object) -> None:
    torch.manual_seed(3)
    enc = make().double()  # type: ignore[operator]
    d_in = 6 if isinstance(enc[0], nn.Linear) and enc[0].in_features == 6 else 36
    x = torch.rand(5, d_in, dtype=DT)
    v = torch.randn(5, d_in, dtype=DT)
    h1, t1 = penalties._jvp(enc, x, v)
    h2, t2 = penalties._jvp_forward_ad(enc, x, v)
    torch.testing.assert_close(h1, h2)
    torch.testing.assert_close(t1, t2)
    params = list(enc.parameters())
    # Biases do not move J v: unused there, in both computations alike.
    g1 = torch.autograd.grad(t1.pow(2).sum(), params, allow_unused=True)
    g2 = torch.autograd.grad(t2.pow(2).sum(), params, allow_unused=True)
    for a, b in zip(g1, g2, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            torch.testing.assert_close(a, b)
