"""Tests of contractive.tangent_prop: the penalty against a brute-force Jacobian in float64."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from contractive.exceptions import ConfigError
from contractive.tangent_prop import tangent_propagation_penalty


def _brute(model: nn.Module, x: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """sum_j ||J_o(x_b) u_bj||^2 from the full Jacobian of each sample, with create_graph."""
    values = []
    for b in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(
            lambda xb: model(xb.unsqueeze(0)).flatten(), x[b], create_graph=True
        )  # (n_out, *input_shape)
        jac = jac.reshape(jac.shape[0], -1)  # (n_out, d_x)
        moved = jac @ tangents[b].reshape(tangents.shape[1], -1).t()  # (n_out, k)
        values.append(moved.pow(2).sum())
    return torch.stack(values)


def _mlp(activation: nn.Module) -> nn.Module:
    return nn.Sequential(nn.Linear(7, 6), activation, nn.Linear(6, 5), activation, nn.Linear(5, 3))


MODELS = {
    "sigmoid": lambda: _mlp(nn.Sigmoid()),
    "tanh": lambda: _mlp(nn.Tanh()),
    "softplus": lambda: _mlp(nn.Softplus()),
    "softmax output": lambda: nn.Sequential(_mlp(nn.Sigmoid()), nn.Softmax(dim=1)),
    "conv": lambda: nn.Sequential(
        nn.Unflatten(1, (1, 4, 4)),
        nn.Conv2d(1, 3, 3, padding=1),
        nn.Tanh(),
        nn.Flatten(),
        nn.Linear(48, 3),
    ),
}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("k", [1, 4])
def test_value_and_parameter_gradient_match_brute_force(name: str, k: int) -> None:
    torch.manual_seed(0)
    model = MODELS[name]().double()
    d = 16 if name == "conv" else 7
    x = torch.rand(5, d, dtype=torch.float64)
    tangents = torch.randn(5, k, d, dtype=torch.float64)
    got = tangent_propagation_penalty(model, x, tangents)
    want = _brute(model, x, tangents)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    params = [p for p in model.parameters()]
    # An output bias does not move J_o: its gradient is None (unused) in both, or zero.
    grads = torch.autograd.grad(got.sum(), params, allow_unused=True, materialize_grads=True)
    want_grads = torch.autograd.grad(want.sum(), params, allow_unused=True, materialize_grads=True)
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)
    assert grads[0].abs().sum() > 0  # the penalty reaches the first layer's weights


def test_each_sample_uses_only_its_own_tangents() -> None:
    torch.manual_seed(1)
    model = _mlp(nn.Tanh()).double()
    x, u = torch.rand(4, 7, dtype=torch.float64), torch.randn(4, 3, 7, dtype=torch.float64)
    whole = tangent_propagation_penalty(model, x, u)
    for b in range(4):
        alone = tangent_propagation_penalty(model, x[b : b + 1], u[b : b + 1])
        torch.testing.assert_close(alone[0], whole[b])


def test_scaling_a_tangent_scales_its_term_quadratically() -> None:
    torch.manual_seed(2)
    model = _mlp(nn.Sigmoid()).double()
    x, u = torch.rand(3, 7, dtype=torch.float64), torch.randn(3, 1, 7, dtype=torch.float64)
    once = tangent_propagation_penalty(model, x, u)
    torch.testing.assert_close(tangent_propagation_penalty(model, x, 3 * u), 9 * once)


def test_float16_tangents_are_cast_to_the_input_dtype() -> None:
    torch.manual_seed(3)
    model = _mlp(nn.Sigmoid())
    x, u = torch.rand(3, 7), torch.randn(3, 2, 7)
    half = tangent_propagation_penalty(model, x, u.half())
    torch.testing.assert_close(half, tangent_propagation_penalty(model, x, u.half().float()))


@pytest.mark.parametrize(
    ("tangents", "match"),
    [
        (
            torch.zeros(4, 2, 6),
            r"must have shape \(4, 'k', 7\) for x of shape \(4, 7\). Got "
            r"\(4, 2, 6\) instead",
        ),
        (torch.zeros(3, 2, 7), r"must have shape \(4, 'k', 7\)"),
        (torch.zeros(4, 7), r"must have shape \(4, 'k', 7\)"),
        (torch.zeros(4, 0, 7), r"at least one tangent per sample \(k >= 1\). Got k = 0"),
    ],
)
def test_bad_tangents_are_refused(tangents: torch.Tensor, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        tangent_propagation_penalty(_mlp(nn.Tanh()), torch.rand(4, 7), tangents)


def test_arrays_are_refused() -> None:
    import numpy as np

    with pytest.raises(ConfigError, match=r"must be tensors. Got ndarray and Tensor instead"):
        tangent_propagation_penalty(_mlp(nn.Tanh()), np.zeros((2, 7)), torch.zeros(2, 1, 7))  # type: ignore[arg-type]


def _signs(seed: int, shape: tuple[int, int, int]) -> torch.Tensor:
    """The signs tangent_propagation_penalty draws from a generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    return (2 * torch.randint(0, 2, shape, generator=g) - 1).double()


@pytest.mark.parametrize("projections", [1, 3])
def test_projections_are_random_sign_combinations(projections: int) -> None:
    # The estimate is mean_m ||J_o (sum_j eps_mj u_j)||^2 with the generator's signs: the
    # value and the parameters' gradient against the brute-force Jacobian of that formula.
    torch.manual_seed(0)
    model = _mlp(nn.Tanh()).double()
    x = torch.rand(5, 7, dtype=torch.float64)
    tangents = torch.randn(5, 4, 7, dtype=torch.float64)
    got = tangent_propagation_penalty(
        model, x, tangents, projections=projections, generator=torch.Generator().manual_seed(3)
    )
    eps = _signs(3, (5, projections, 4))
    combined = torch.einsum("bmk,bkd->bmd", eps, tangents)  # (B, m, d)
    want = _brute(model, x, combined) / projections
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    params = list(model.parameters())
    grads = torch.autograd.grad(got.sum(), params, allow_unused=True, materialize_grads=True)
    want_grads = torch.autograd.grad(want.sum(), params, allow_unused=True, materialize_grads=True)
    for g, w in zip(grads, want_grads, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-9, atol=1e-12)


def test_projection_formula_is_unbiased() -> None:
    # Averaged over all 2^k sign patterns, ||J (sum_j eps_j u_j)||^2 is the exact penalty: the
    # cross terms cancel. Enumerating the patterns checks the identity itself, not a sample.
    import itertools

    torch.manual_seed(1)
    model = _mlp(nn.Sigmoid()).double()
    x = torch.rand(3, 7, dtype=torch.float64)
    tangents = torch.randn(3, 4, 7, dtype=torch.float64)
    patterns = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=4)), dtype=torch.float64)
    combined = torch.einsum("pk,bkd->bpd", patterns, tangents)  # (B, 16, d): every pattern
    mean = _brute(model, x, combined) / patterns.shape[0]
    torch.testing.assert_close(mean, tangent_propagation_penalty(model, x, tangents))


def test_bad_projections_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"'projections' parameter .* range \[1, inf\). Got 0"):
        tangent_propagation_penalty(
            _mlp(nn.Tanh()), torch.rand(2, 7), torch.rand(2, 3, 7), projections=0
        )
