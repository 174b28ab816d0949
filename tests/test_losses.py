"""Tests of contractive.losses: per-sample sums, never averaged over features."""

from __future__ import annotations

import math
import re

import pytest
import torch

from contractive import AutoencoderOutput, mlp_autoencoder
from contractive.losses import LOSSES, bce_loss, mse_loss, reconstruction_loss

pytestmark = pytest.mark.usefixtures("one_thread")

DT = torch.float64

SHAPES = {"flat": (4, 7), "single": (1, 5), "image": (3, 1, 4, 4)}


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(99)


def manual_bce(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    p = 1.0 / (1.0 + torch.exp(-logits))
    per_entry = -(x * torch.log(p) + (1.0 - x) * torch.log(1.0 - p))
    return per_entry.reshape(x.shape[0], -1).sum(dim=1)


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_bce_equals_the_formula_summed_per_sample(shape):
    logits = 3.0 * torch.randn(shape, dtype=DT)
    x = torch.rand(shape, dtype=DT)  # grey levels, not only {0, 1}
    loss = bce_loss(logits, x)
    assert loss.shape == (shape[0],)
    torch.testing.assert_close(loss, manual_bce(logits, x), rtol=1e-12, atol=1e-12)


def test_bce_is_stable_for_confident_logits():
    logits = torch.tensor([[-200.0, -50.0, 0.0, 50.0, 200.0]], dtype=DT)
    x = torch.tensor([[0.0, 1.0, 0.5, 0.25, 1.0]], dtype=DT)
    loss = bce_loss(logits, x)
    # -[x log s(l) + (1 - x) log(1 - s(l))] = max(l, 0) - x l + log(1 + exp(-|l|))
    expected = sum(
        max(l_, 0.0) - x_ * l_ + math.log1p(math.exp(-abs(l_)))
        for l_, x_ in zip(logits[0].tolist(), x[0].tolist(), strict=True)
    )
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_bce_gradient_is_sigmoid_minus_target():
    logits = torch.randn(3, 6, dtype=DT, requires_grad=True)
    x = torch.rand(3, 6, dtype=DT)
    (g,) = torch.autograd.grad(bce_loss(logits, x).sum(), logits)
    torch.testing.assert_close(g, torch.sigmoid(logits.detach()) - x, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", list(SHAPES.values()), ids=list(SHAPES))
def test_mse_equals_the_formula_summed_per_sample(shape):
    x_hat = torch.randn(shape, dtype=DT)
    x = torch.rand(shape, dtype=DT)
    loss = mse_loss(x_hat, x)
    assert loss.shape == (shape[0],)
    expected = torch.stack([((a - b) ** 2).sum() for a, b in zip(x_hat, x, strict=True)])
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["bce", "mse"])
def test_losses_sum_over_features_and_do_not_average_over_the_batch(name: str):
    fn = bce_loss if name == "bce" else mse_loss
    a = torch.randn(4, 9, dtype=DT)
    x = torch.rand(4, 9, dtype=DT)
    loss = fn(a, x)
    # Sum over features: doubling the features doubles the loss (a mean would keep it).
    doubled = fn(torch.cat([a, a], dim=1), torch.cat([x, x], dim=1))
    torch.testing.assert_close(doubled, 2.0 * loss, rtol=1e-12, atol=0)
    # One value per sample, independent of the rest of the batch.
    for i in range(4):
        torch.testing.assert_close(fn(a[i : i + 1], x[i : i + 1]), loss[i : i + 1])


def test_bce_scale_on_mnist_sized_input():
    """Logits 0 against targets 1/2 cost log 2 per pixel: 784 log 2 per image, not log 2."""
    d = 784
    loss = bce_loss(torch.zeros(2, d, dtype=DT), torch.full((2, d), 0.5, dtype=DT))
    torch.testing.assert_close(loss, torch.full((2,), d * math.log(2.0), dtype=DT))
    ones = mse_loss(torch.ones(2, d, dtype=DT), torch.zeros(2, d, dtype=DT))
    torch.testing.assert_close(ones, torch.full((2,), float(d), dtype=DT))


def test_reconstruction_loss_reads_the_right_field():
    x = torch.rand(3, 5, dtype=DT)
    logits = torch.randn(3, 5, dtype=DT)
    x_hat = torch.rand(3, 5, dtype=DT)  # deliberately not sigmoid(logits)
    out = AutoencoderOutput(x_hat=x_hat, h=torch.zeros(3, 2, dtype=DT), logits=logits)
    torch.testing.assert_close(reconstruction_loss(out, x, "bce"), manual_bce(logits, x))
    torch.testing.assert_close(reconstruction_loss(out, x), manual_bce(logits, x))  # default
    torch.testing.assert_close(reconstruction_loss(out, x, "mse"), ((x_hat - x) ** 2).sum(dim=1))


def test_losses_table_names_the_output_activation():
    assert set(LOSSES) == {"bce", "mse"}
    assert LOSSES["bce"][1] == "sigmoid"
    assert LOSSES["mse"][1] == "identity"


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_reconstruction_loss_of_a_model(loss: str):
    output_activation = LOSSES[loss][1]
    model = mlp_autoencoder([6, 3], output_activation=output_activation).to(DT)
    x = torch.rand(4, 6, dtype=DT)
    out = model(x)
    value = reconstruction_loss(out, x, loss)
    if loss == "bce":
        p = out.x_hat  # sigmoid(logits)
        expected = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(dim=1)
    else:
        expected = ((out.x_hat - x) ** 2).sum(dim=1)
    torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["foo", "BCE", "", "l2"])
def test_reconstruction_loss_rejects_unknown_names(name: str):
    out = AutoencoderOutput(torch.zeros(2, 3), torch.zeros(2, 1), torch.zeros(2, 3))
    match = re.escape(
        f"The 'loss' parameter must be a str among {{'bce', 'mse'}}. Got {name!r} instead."
    )
    with pytest.raises(ValueError, match=match):
        reconstruction_loss(out, torch.zeros(2, 3), loss=name)
