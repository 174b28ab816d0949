"""Tests of contractive.nn: builders, tied and untied decoders, shapes, and learning."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contractive import Autoencoder, AutoencoderOutput, conv_autoencoder, mlp_autoencoder
from contractive.losses import bce_loss, reconstruction_loss
from contractive.nn import ACTIVATIONS, ConvDecoder, MLPDecoder, make_activation
from contractive.penalties import jacobian_penalty

pytestmark = pytest.mark.usefixtures("one_thread")

DT = torch.float64


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(1234)


def grad_or_none(out: Tensor, param: Tensor) -> Tensor | None:
    return torch.autograd.grad(out, param, allow_unused=True, retain_graph=True)[0]


# ---------------------------------------------------------------------------------------------
# Activations.

# Written from the definitions, not from torch's modules.
REFERENCE_ACTIVATIONS = {
    "sigmoid": lambda a: 1.0 / (1.0 + torch.exp(-a)),
    "tanh": lambda a: (torch.exp(a) - torch.exp(-a)) / (torch.exp(a) + torch.exp(-a)),
    "relu": lambda a: torch.where(a > 0, a, torch.zeros_like(a)),
    "leaky_relu": lambda a: torch.where(a > 0, a, 0.01 * a),
    "softplus": lambda a: torch.log(1.0 + torch.exp(a)),
    "elu": lambda a: torch.where(a > 0, a, torch.exp(a) - 1.0),
    "gelu": lambda a: a * 0.5 * (1.0 + torch.erf(a / math.sqrt(2.0))),
    "identity": lambda a: a,
}


def test_reference_table_matches_the_activation_names():
    assert set(REFERENCE_ACTIVATIONS) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_make_activation_computes_the_named_function(name: str):
    module = make_activation(name)
    assert isinstance(module, nn.Module)
    assert make_activation(name) is not module  # a fresh module each call
    a = torch.linspace(-5.0, 5.0, 101, dtype=DT)
    torch.testing.assert_close(module(a), REFERENCE_ACTIVATIONS[name](a), rtol=1e-12, atol=1e-12)


ACTIVATION_ERROR = re.escape(
    "The 'activation' parameter must be a str among {'sigmoid', 'tanh', 'relu', 'leaky_relu', "
    "'softplus', 'elu', 'gelu', 'identity'}. Got 'foo' instead."
)


def test_make_activation_rejects_unknown_names():
    with pytest.raises(ValueError, match=ACTIVATION_ERROR):
        make_activation("foo")
    with pytest.raises(ValueError, match=ACTIVATION_ERROR):
        mlp_autoencoder([4, 2], activation="foo")
    with pytest.raises(ValueError, match=ACTIVATION_ERROR):
        mlp_autoencoder([4, 2], output_activation="foo")
    with pytest.raises(ValueError, match=ACTIVATION_ERROR):
        conv_autoencoder((1, 8, 8), [2], activation="foo")


# ---------------------------------------------------------------------------------------------
# MLP autoencoder.


@pytest.mark.parametrize("sizes", [[6, 4], [7, 5, 3], [5, 4, 3, 2]])
@pytest.mark.parametrize("name", ["sigmoid", "relu"])
def test_mlp_encoder_structure(sizes: list[int], name: str):
    model = mlp_autoencoder(sizes, activation=name)
    modules = list(model.encoder)
    assert len(modules) == 2 * (len(sizes) - 1)
    for k, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        linear, act = modules[2 * k], modules[2 * k + 1]
        assert type(linear) is nn.Linear
        assert (linear.in_features, linear.out_features) == (n_in, n_out)
        assert type(act) is type(make_activation(name))
    out = model(torch.rand(3, sizes[0]))
    assert out.h.shape == (3, sizes[-1])
    assert out.x_hat.shape == out.logits.shape == (3, sizes[0])


@pytest.mark.parametrize("sizes", [[784], [], [784, 0], [4, -2, 3]])
def test_mlp_autoencoder_rejects_bad_sizes(sizes: list[int]):
    match = re.escape(
        "The 'sizes' parameter must hold the input size and at least one hidden size, all "
        f"positive integers. Got {sizes!r} instead."
    )
    with pytest.raises(ValueError, match=match):
        mlp_autoencoder(sizes)


def test_tied_mlp_decoder_is_the_transposed_encoder():
    model = mlp_autoencoder([6, 5, 3], activation="tanh", tied=True).to(DT)
    # Each weight is stored once, in the encoder; the decoder only owns biases.
    assert set(model.state_dict()) == {
        "encoder.0.weight",
        "encoder.0.bias",
        "encoder.2.weight",
        "encoder.2.bias",
        "decoder.biases.0",
        "decoder.biases.1",
    }
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    assert not encoder_ids & {id(p) for p in model.decoder.parameters()}
    assert len(list(model.parameters())) == 6
    with torch.no_grad():
        for b in model.decoder.biases:
            b.copy_(torch.randn_like(b))
    w1, w2 = model.encoder[0].weight, model.encoder[2].weight
    b1, b2 = model.decoder.biases
    h = torch.randn(4, 3, dtype=DT)
    expected = torch.tanh(h @ w2 + b1) @ w1 + b2
    torch.testing.assert_close(model.decoder(h), expected, rtol=1e-12, atol=1e-12)
    # Changing the encoder weight changes the decoder: shared, not copied.
    with torch.no_grad():
        w1.mul_(2.0)
    torch.testing.assert_close(model.decoder(h), torch.tanh(h @ w2 + b1) @ w1 + b2)


def test_tied_mlp_reconstruction_gradient_reaches_encoder_weight_through_decoder():
    model = mlp_autoencoder([6, 4], tied=True).to(DT)
    weight = model.encoder[0].weight
    x = torch.rand(5, 6, dtype=DT)
    h = torch.rand(5, 4, dtype=DT)  # a code that does not depend on the encoder
    loss = bce_loss(model.decoder(h), x).sum()
    g = grad_or_none(loss, weight)
    assert g is not None
    # d/dW sum BCE(h W + c, x) = h^T (sigmoid(h W + c) - x), shaped like W (d_h, d_x).
    logits = h @ weight + model.decoder.biases[0]
    expected = h.T @ (torch.sigmoid(logits) - x)
    torch.testing.assert_close(g, expected.detach(), rtol=1e-10, atol=1e-12)


def test_untied_mlp_decoder_has_its_own_weights():
    model = mlp_autoencoder([6, 5, 3], activation="relu", tied=False).to(DT)
    keys = set(model.state_dict())
    assert {"decoder.layers.0.weight", "decoder.layers.1.weight"} <= keys
    assert model.decoder.layers[0].weight.shape == (5, 3)
    assert model.decoder.layers[1].weight.shape == (6, 5)
    encoder_ids = {id(p) for p in model.encoder.parameters()}
    assert not encoder_ids & {id(p) for p in model.decoder.parameters()}
    h = torch.rand(4, 3, dtype=DT)
    loss = model.decoder(h).sum()
    assert grad_or_none(loss, model.encoder[0].weight) is None
    assert grad_or_none(loss, model.decoder.layers[0].weight) is not None
    dec0, dec1 = model.decoder.layers
    expected = F.linear(torch.relu(F.linear(h, dec0.weight, dec0.bias)), dec1.weight, dec1.bias)
    torch.testing.assert_close(model.decoder(h), expected, rtol=1e-12, atol=1e-12)


def test_mlp_decoder_needs_a_linear_layer():
    with pytest.raises(
        ValueError, match=re.escape("The encoder has no nn.Linear layer to mirror.")
    ):
        MLPDecoder(nn.Sequential(nn.Tanh()), "tanh", tied=True)


# ---------------------------------------------------------------------------------------------
# Convolutional autoencoder.

CONV_CASES = {
    "28x28_k5s2p2": ((1, 28, 28), [4, 8], 5, 2, 2),
    "27x27_k5s2p2": ((1, 27, 27), [4, 8], 5, 2, 2),
    "8x8_k3s2p1": ((1, 8, 8), [3, 5], 3, 2, 1),
    "3x9x7_k4s2p1": ((3, 9, 7), [4], 4, 2, 1),
    "2x11x10_k3s3p0": ((2, 11, 10), [3, 4], 3, 3, 0),
    "hw_only_7x7": ((7, 7), [2], 3, 2, 1),
}


@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_autoencoder_reconstructs_to_the_input_shape(case: str, tied: bool):
    shape, channels, k, s, p = CONV_CASES[case]
    model = conv_autoencoder(shape, channels, kernel_size=k, stride=s, padding=p, tied=tied)
    chw = shape if len(shape) == 3 else (1, *shape)
    assert model.input_shape == chw
    x = torch.rand(2, *chw)
    out = model(x)
    assert isinstance(out, AutoencoderOutput)
    assert out.x_hat.shape == out.logits.shape == x.shape
    assert out.h.shape == model.encoder(x).shape
    assert out.h.shape[1] == channels[-1]
    # Flat input: accepted, reshaped for the encoder, given back flat.
    flat = x.reshape(2, -1)
    out_flat = model(flat)
    assert out_flat.x_hat.shape == flat.shape
    torch.testing.assert_close(out_flat.h, out.h)
    torch.testing.assert_close(out_flat.x_hat, out.x_hat.reshape(2, -1))


@pytest.mark.parametrize(
    "shape", [(1, 2, 3, 4), (28,), (0, 28, 28), (1, 28, -1)], ids=["4d", "1d", "zero", "negative"]
)
def test_conv_autoencoder_rejects_bad_input_shape(shape: tuple[int, ...]):
    match = re.escape(
        "The 'input_shape' parameter must be (C, H, W) or (H, W) with positive sizes. "
        f"Got {shape!r} instead."
    )
    with pytest.raises(ValueError, match=match):
        conv_autoencoder(shape, [4])


@pytest.mark.parametrize("channels", [[], [4, 0]])
def test_conv_autoencoder_rejects_bad_channels(channels: list[int]):
    match = re.escape(
        "The 'channels' parameter must be a non-empty list of positive integers. "
        f"Got {channels!r} instead."
    )
    with pytest.raises(ValueError, match=match):
        conv_autoencoder((1, 8, 8), channels)


def adjoint_check(conv: nn.Conv2d, decoder_layer, x: Tensor) -> None:
    """<conv(x), y> == <decoder(y), x> with the bias left out of the forward map."""
    y = torch.randn_like(conv(x))
    forward = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    lhs = (forward * y).sum()
    rhs = (decoder_layer(y) * x).sum()
    torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", ["28x28_k5s2p2", "27x27_k5s2p2", "8x8_k3s2p1", "3x9x7_k4s2p1"])
def test_tied_conv_decoder_is_the_adjoint(case: str):
    shape, channels, k, s, p = CONV_CASES[case]
    model = conv_autoencoder(shape, channels[:1], kernel_size=k, stride=s, padding=p, tied=True)
    model = model.to(DT)
    assert torch.count_nonzero(model.decoder.biases[0]) == 0  # zero bias at initialisation
    x = torch.randn(2, *shape, dtype=DT)
    adjoint_check(model.encoder[0], model.decoder, x)


def test_tied_conv_decoder_adjoint_with_groups_and_dilation():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)
    encoder = nn.Sequential(conv, nn.Tanh())
    decoder = ConvDecoder(encoder, (4, 9, 9), "tanh", tied=True).to(DT)
    conv.to(DT)
    x = torch.randn(2, 4, 9, 9, dtype=DT)
    assert decoder(encoder(x)).shape == x.shape
    adjoint_check(conv, decoder, x)


def test_tied_conv_autoencoder_shares_the_kernels():
    model = conv_autoencoder((1, 8, 8), [3, 5], kernel_size=3, stride=2, padding=1, tied=True)
    keys = set(model.state_dict())
    assert keys == {
        "encoder.0.weight",
        "encoder.0.bias",
        "encoder.2.weight",
        "encoder.2.bias",
        "decoder.biases.0",
        "decoder.biases.1",
    }
    x = torch.rand(2, 1, 8, 8)
    h = torch.rand_like(model.encoder(x))  # a code that does not depend on the encoder
    loss = bce_loss(model.decoder(h), x).sum()
    for idx in (0, 2):
        g = grad_or_none(loss, model.encoder[idx].weight)
        assert g is not None
        assert g.norm() > 0


def test_untied_conv_decoder_has_its_own_kernels():
    model = conv_autoencoder((1, 8, 8), [3, 5], kernel_size=3, stride=2, padding=1, tied=False)
    layers = model.decoder.layers
    assert [type(m) for m in layers] == [nn.ConvTranspose2d, nn.ConvTranspose2d]
    assert layers[0].weight.shape == model.encoder[2].weight.shape
    assert layers[1].weight.shape == model.encoder[0].weight.shape
    x = torch.rand(2, 1, 8, 8)
    loss = model.decoder(torch.rand_like(model.encoder(x))).sum()
    assert grad_or_none(loss, model.encoder[0].weight) is None
    assert grad_or_none(loss, layers[0].weight) is not None


def test_conv_decoder_rejects_string_padding_and_missing_convs():
    encoder = nn.Sequential(nn.Conv2d(1, 2, 3, padding="same"), nn.Sigmoid())
    match = re.escape(
        "Conv2d padding='same' cannot be mirrored by a ConvTranspose2d decoder; "
        "give the padding as integers."
    )
    with pytest.raises(ValueError, match=match):
        ConvDecoder(encoder, (1, 8, 8), "sigmoid", tied=True)
    with pytest.raises(
        ValueError, match=re.escape("The encoder has no nn.Conv2d layer to mirror.")
    ):
        ConvDecoder(nn.Sequential(nn.Linear(4, 2)), (1, 2, 2), "sigmoid", tied=False)


# ---------------------------------------------------------------------------------------------
# Autoencoder output.


@pytest.mark.parametrize(
    ("output_activation", "fn"),
    [("sigmoid", torch.sigmoid), ("identity", lambda t: t)],
)
@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_forward_returns_autoencoder_output(kind: str, output_activation: str, fn):
    if kind == "mlp":
        model = mlp_autoencoder([16, 6], output_activation=output_activation)
    else:
        model = conv_autoencoder(
            (1, 4, 4), [2], kernel_size=3, padding=1, output_activation=output_activation
        )
    x = torch.rand(3, 16)
    out = model(x)
    assert isinstance(out, AutoencoderOutput)
    assert isinstance(out, tuple)
    x_hat, h, logits = out
    assert x_hat is out.x_hat
    assert h is out.h
    assert logits is out.logits
    torch.testing.assert_close(out.x_hat, fn(out.logits))
    torch.testing.assert_close(out.h, model.encode(x))
    torch.testing.assert_close(out.x_hat, model.decode(out.h).reshape(x.shape))
    assert out.h.requires_grad


def test_autoencoder_accepts_any_encoder_and_decoder():
    encoder = nn.Sequential(nn.Linear(5, 3), nn.Tanh())
    decoder = nn.Linear(3, 5)
    model = Autoencoder(encoder, decoder, output_activation="identity")
    x = torch.randn(4, 5)
    out = model(x)
    torch.testing.assert_close(out.x_hat, decoder(encoder(x)))
    assert model.input_shape is None


# ---------------------------------------------------------------------------------------------
# It learns.


def structured_data(n: int, d: int) -> Tensor:
    """Grey levels in (0, 1) on a 4-dimensional manifold."""
    g = torch.Generator().manual_seed(0)
    z = torch.rand(n, 4, generator=g)
    mix = 3.0 * torch.randn(4, d, generator=g)
    return torch.sigmoid((z - 0.5) @ mix)


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_contractive_autoencoder_learns(kind: str):
    if kind == "mlp":
        model = mlp_autoencoder([64, 16], activation="sigmoid", tied=True)
    else:
        model = conv_autoencoder((1, 8, 8), [6], kernel_size=3, stride=2, padding=1)
    data = structured_data(128, 64)
    contraction = 0.1
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    # BCE against grey targets cannot go below the targets' entropy: measure above that.
    floor = bce_loss(torch.logit(data), data).mean().item()

    def objective() -> Tensor:
        out = model(data)
        penalty = jacobian_penalty(model.encoder, model.prepare(data), method="analytic")
        return reconstruction_loss(out, data).mean() + contraction * penalty.mean()

    with torch.no_grad():
        initial = objective().item() - floor
    for _ in range(100):
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        final = objective().item() - floor
    assert math.isfinite(final)
    assert final < 0.6 * initial, (initial, final)
