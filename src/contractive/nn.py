"""Autoencoder networks: MLP and convolutional encoders, tied or untied decoders.

The modules here return data, never a loss: :class:`Autoencoder` maps ``x`` to an
:class:`AutoencoderOutput` holding the code ``h``, the decoder's pre-activation ``logits`` and
the reconstruction ``x_hat``. The objective (reconstruction + penalties) is assembled by the
training code, so penalties stay pluggable.

Encoders are plain :class:`torch.nn.Sequential` stacks of standard modules
(``nn.Linear``/``nn.Conv2d`` followed by an activation module), so that the analytic Jacobian
penalty in :mod:`contractive.penalties` can read their structure, and so that a user's own
``nn.Sequential(nn.Linear(...), nn.Tanh())`` is treated exactly like one of ours.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .validation import check_choice

__all__ = [
    "ACTIVATIONS",
    "Autoencoder",
    "AutoencoderOutput",
    "ConvDecoder",
    "MLPDecoder",
    "conv_autoencoder",
    "make_activation",
    "mlp_autoencoder",
]

#: Activation names accepted everywhere (config, CLI, estimator), mapped to module factories.
#: Standard torch modules are used so that the analytic penalty recognises them by type.
ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.01),
    "softplus": nn.Softplus,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "identity": nn.Identity,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module for ``name``.

    Parameters
    ----------
    name : str
        One of :data:`ACTIVATIONS`.

    Examples
    --------
    >>> make_activation("tanh")
    Tanh()
    """
    return ACTIVATIONS[check_choice("activation", name, ACTIVATIONS)]()


class AutoencoderOutput(NamedTuple):
    """What :meth:`Autoencoder.forward` returns.

    Attributes
    ----------
    x_hat : Tensor
        Reconstruction, shaped like the input: ``output_activation(logits)``.
    h : Tensor
        Code, ``(B, d_h)`` for an MLP, ``(B, C, H, W)`` for a conv encoder.
    logits : Tensor
        Decoder output before its output activation (what ``bce_loss`` takes).

    Examples
    --------
    >>> import torch
    >>> model = mlp_autoencoder([6, 3])
    >>> x_hat, h, logits = model(torch.rand(4, 6))
    >>> h.shape, x_hat.shape
    (torch.Size([4, 3]), torch.Size([4, 6]))
    >>> torch.equal(x_hat, torch.sigmoid(logits))
    True
    """

    x_hat: Tensor
    h: Tensor
    logits: Tensor


_Layer = TypeVar("_Layer", nn.Linear, nn.Conv2d)


def _layers_to_mirror(encoder: nn.Sequential, kind: type[_Layer]) -> list[_Layer]:
    """The ``kind`` layers of ``encoder``, in order, that a decoder mirrors (at least one)."""
    layers = [m for m in encoder if isinstance(m, kind)]
    if not layers:
        raise ValueError(f"The encoder has no nn.{kind.__name__} layer to mirror.")
    return layers


class MLPDecoder(nn.Module):
    """Decoder mirroring an MLP encoder, tied to its weights or with its own.

    Tied: decoder layer k computes ``h @ W_k`` (the transpose of encoder layer k's map) plus its
    own bias; the weights stay in the encoder, so a penalty on the encoder trains them and the
    state dict holds each weight once.

    Parameters
    ----------
    encoder : nn.Sequential
        Alternating ``nn.Linear`` and activation modules.
    activation : str
        Activation between decoder layers (the hidden one; not applied after the last layer).
    tied : bool
        Share the encoder's weights (transposed).

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> encoder = nn.Sequential(nn.Linear(6, 4), nn.Sigmoid(), nn.Linear(4, 2), nn.Sigmoid())
    >>> tied = MLPDecoder(encoder, "sigmoid", tied=True)
    >>> tied(torch.rand(5, 2)).shape
    torch.Size([5, 6])
    >>> [p.numel() for p in tied.parameters()]  # only biases: the weights are the encoder's
    [4, 6]
    >>> untied = MLPDecoder(encoder, "sigmoid", tied=False)
    >>> [tuple(p.shape) for p in untied.parameters()]
    [(4, 2), (4,), (6, 4), (6,)]
    """

    def __init__(self, encoder: nn.Sequential, activation: str, *, tied: bool) -> None:
        super().__init__()
        linears = _layers_to_mirror(encoder, nn.Linear)
        self.tied = tied
        # Plain list, not a ModuleList: the encoder owns these parameters.
        self._encoder_linears: list[nn.Linear] = linears
        sizes = [(lin.out_features, lin.in_features) for lin in reversed(linears)]
        if tied:
            self.biases = nn.ParameterList([nn.Parameter(torch.zeros(n_out)) for _, n_out in sizes])
            self.layers = nn.ModuleList()
        else:
            self.biases = nn.ParameterList()
            self.layers = nn.ModuleList([nn.Linear(n_in, n_out) for n_in, n_out in sizes])
        self.activations = nn.ModuleList(make_activation(activation) for _ in sizes[:-1])

    def forward(self, h: Tensor) -> Tensor:
        """Map a code ``(B, d_h)`` to output logits ``(B, d_x)``."""
        n = len(self._encoder_linears)
        for k in range(n):
            if self.tied:
                weight = self._encoder_linears[n - 1 - k].weight  # (d_out_enc, d_in_enc)
                h = F.linear(h, weight.t(), self.biases[k])
            else:
                h = self.layers[k](h)
            if k < n - 1:
                h = self.activations[k](h)
        return h


class ConvDecoder(nn.Module):
    """Transposed-convolution decoder mirroring a conv encoder, tied or untied.

    ``conv_transpose2d`` with the encoder's own kernel is the adjoint of the encoder's
    convolution, so tying costs nothing. ``output_padding`` is chosen so that each layer gives
    back exactly the spatial size its encoder layer received.

    Parameters
    ----------
    encoder : nn.Sequential
        Alternating ``nn.Conv2d`` and activation modules.
    input_shape : tuple of int
        ``(C, H, W)`` of one input image.
    activation : str
        Activation between decoder layers.
    tied : bool
        Share the encoder's kernels.

    Examples
    --------
    Stride 2 halves 7 to 4 pixels; the decoder gives back 7, not 8:

    >>> import torch
    >>> from torch import nn
    >>> encoder = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.Sigmoid())
    >>> encoder(torch.rand(2, 1, 7, 7)).shape
    torch.Size([2, 4, 4, 4])
    >>> decoder = ConvDecoder(encoder, (1, 7, 7), "sigmoid", tied=True)
    >>> decoder(torch.rand(2, 4, 4, 4)).shape
    torch.Size([2, 1, 7, 7])
    """

    def __init__(
        self,
        encoder: nn.Sequential,
        input_shape: tuple[int, int, int],
        activation: str,
        *,
        tied: bool,
    ) -> None:
        super().__init__()
        convs = _layers_to_mirror(encoder, nn.Conv2d)
        self.tied = tied
        self._encoder_convs: list[nn.Conv2d] = convs
        # Spatial size entering each encoder layer, to undo stride rounding on the way back.
        sizes: list[tuple[int, int]] = []
        with torch.no_grad():
            z = torch.zeros(1, *input_shape)
            for conv in convs:
                sizes.append((z.shape[-2], z.shape[-1]))
                z = conv(z)
        self._output_paddings: list[tuple[int, int]] = []
        self.biases = nn.ParameterList()
        self.layers = nn.ModuleList()
        for conv, (h_in, w_in) in zip(reversed(convs), reversed(sizes), strict=True):
            out_pad = _output_padding(conv, h_in, w_in)
            self._output_paddings.append(out_pad)
            if tied:
                self.biases.append(nn.Parameter(torch.zeros(conv.in_channels)))
            else:
                self.layers.append(
                    nn.ConvTranspose2d(
                        conv.out_channels,
                        conv.in_channels,
                        _pair(conv.kernel_size),
                        stride=_pair(conv.stride),
                        padding=_int_padding(conv),
                        output_padding=out_pad,
                        groups=conv.groups,
                        dilation=_pair(conv.dilation),
                    )
                )
        self.activations = nn.ModuleList(make_activation(activation) for _ in convs[:-1])

    def forward(self, h: Tensor) -> Tensor:
        """Map a code ``(B, C', H', W')`` to output logits ``(B, C, H, W)``."""
        n = len(self._encoder_convs)
        for k in range(n):
            conv = self._encoder_convs[n - 1 - k]
            if self.tied:
                h = F.conv_transpose2d(
                    h,
                    conv.weight,
                    self.biases[k],
                    stride=conv.stride,
                    padding=_int_padding(conv),
                    output_padding=self._output_paddings[k],
                    groups=conv.groups,
                    dilation=conv.dilation,
                )
            else:
                h = self.layers[k](h)
            if k < n - 1:
                h = self.activations[k](h)
        return h


def _pair(values: tuple[int, ...]) -> tuple[int, int]:
    return (int(values[0]), int(values[1]))


def _int_padding(conv: nn.Conv2d) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        raise ValueError(
            f"Conv2d padding={conv.padding!r} cannot be mirrored by a ConvTranspose2d decoder; "
            "give the padding as integers."
        )
    return (int(conv.padding[0]), int(conv.padding[1]))


def _output_padding(conv: nn.Conv2d, h_in: int, w_in: int) -> tuple[int, int]:
    pad = _int_padding(conv)
    out: list[int] = []
    for size, k, s, p, d in zip(
        (h_in, w_in), conv.kernel_size, conv.stride, pad, conv.dilation, strict=True
    ):
        n_out = (size + 2 * p - d * (k - 1) - 1) // s + 1
        out.append(size - ((n_out - 1) * s - 2 * p + d * (k - 1) + 1))
    return (out[0], out[1])


class Autoencoder(nn.Module):
    """An encoder, a decoder and an output activation; returns data, not a loss.

    Parameters
    ----------
    encoder : nn.Module
        Maps ``x`` to the code ``h``. Penalties in :mod:`contractive.penalties` take this module.
    decoder : nn.Module
        Maps ``h`` to output logits.
    output_activation : str
        ``"sigmoid"`` for binary cross-entropy on data in [0, 1], ``"identity"`` for squared error.
    input_shape : tuple of int, optional
        Shape of one sample as the encoder wants it, e.g. ``(1, 28, 28)`` for a conv encoder.
        Flat inputs ``(B, prod(input_shape))`` are reshaped to it, and reconstructions are given
        back in the shape the input came in.

    Examples
    --------
    >>> import torch
    >>> model = mlp_autoencoder([64, 32], activation="sigmoid", tied=True)
    >>> out = model(torch.rand(5, 64))
    >>> out.h.shape, out.x_hat.shape
    (torch.Size([5, 32]), torch.Size([5, 64]))
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        *,
        output_activation: str = "sigmoid",
        input_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.output_activation = make_activation(output_activation)
        self.input_shape = tuple(input_shape) if input_shape is not None else None

    def prepare(self, x: Tensor) -> Tensor:
        """Reshape flat input ``(B, d_x)`` to ``(B, *input_shape)`` where the encoder needs it."""
        if self.input_shape is not None and x.shape[1:] != self.input_shape:
            return x.reshape(x.shape[0], *self.input_shape)
        return x

    def encode(self, x: Tensor) -> Tensor:
        """Code of ``x``: ``(B, ...)``."""
        return self.encoder(self.prepare(x))

    def decode(self, h: Tensor) -> Tensor:
        """Reconstruction (after the output activation) from a code."""
        return self.output_activation(self.decoder(h))

    def reconstruct(self, h: Tensor, like: Tensor) -> AutoencoderOutput:
        """Decode ``h`` into an output shaped like ``like`` (the original input)."""
        logits = self.decoder(h).reshape(like.shape)
        return AutoencoderOutput(self.output_activation(logits), h, logits)

    def forward(self, x: Tensor) -> AutoencoderOutput:
        """Encode and decode ``x``; see :class:`AutoencoderOutput`."""
        return self.reconstruct(self.encode(x), x)


def mlp_autoencoder(
    sizes: Sequence[int],
    *,
    activation: str = "sigmoid",
    output_activation: str = "sigmoid",
    tied: bool = True,
) -> Autoencoder:
    """Build an MLP autoencoder from layer sizes ``[d_x, d_h1, ..., d_hk]``.

    The encoder is ``nn.Sequential(Linear(d_x, d_h1), act, ..., Linear(., d_hk), act)``; the
    decoder mirrors it.

    Parameters
    ----------
    sizes : sequence of int
        Input size then each hidden layer's size; at least two entries.
    activation : str
        Encoder (and inner decoder) activation, one of :data:`ACTIVATIONS`.
    output_activation : str
        Applied to the decoder's last layer.
    tied : bool
        Decoder weights are the transposed encoder weights.

    Examples
    --------
    >>> model = mlp_autoencoder([784, 1000])
    >>> model.encoder
    Sequential(
      (0): Linear(in_features=784, out_features=1000, bias=True)
      (1): Sigmoid()
    )
    """
    sizes = [int(s) for s in sizes]
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise ValueError(
            "The 'sizes' parameter must hold the input size and at least one hidden size, "
            f"all positive integers. Got {sizes!r} instead."
        )
    layers: list[nn.Module] = []
    for n_in, n_out in itertools.pairwise(sizes):
        layers += [nn.Linear(n_in, n_out), make_activation(activation)]
    encoder = nn.Sequential(*layers)
    decoder = MLPDecoder(encoder, activation, tied=tied)
    return Autoencoder(encoder, decoder, output_activation=output_activation)


def conv_autoencoder(
    input_shape: Sequence[int],
    channels: Sequence[int],
    *,
    kernel_size: int = 5,
    stride: int = 2,
    padding: int = 2,
    activation: str = "sigmoid",
    output_activation: str = "sigmoid",
    tied: bool = True,
) -> Autoencoder:
    """Build a convolutional autoencoder: stacked ``Conv2d`` + activation, mirrored decoder.

    Parameters
    ----------
    input_shape : sequence of int
        ``(C, H, W)`` of one image (``(H, W)`` means one channel).
    channels : sequence of int
        Output channels of each conv layer.
    kernel_size, stride, padding : int
        Shared by every conv layer.
    activation, output_activation, tied
        As in :func:`mlp_autoencoder`.

    Examples
    --------
    >>> import torch
    >>> model = conv_autoencoder((1, 28, 28), [8, 16])
    >>> out = model(torch.rand(2, 784))
    >>> out.h.shape, out.x_hat.shape
    (torch.Size([2, 16, 7, 7]), torch.Size([2, 784]))
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(
            "The 'input_shape' parameter must be (C, H, W) or (H, W) with positive sizes. "
            f"Got {tuple(input_shape)!r} instead."
        )
    if not channels or any(int(c) < 1 for c in channels):
        raise ValueError(
            "The 'channels' parameter must be a non-empty list of positive integers. "
            f"Got {list(channels)!r} instead."
        )
    layers: list[nn.Module] = []
    c_in = shape[0]
    for c_out in channels:
        layers += [
            nn.Conv2d(c_in, int(c_out), kernel_size, stride=stride, padding=padding),
            make_activation(activation),
        ]
        c_in = int(c_out)
    encoder = nn.Sequential(*layers)
    chw = (shape[0], shape[1], shape[2])
    decoder = ConvDecoder(encoder, chw, activation, tied=tied)
    return Autoencoder(encoder, decoder, output_activation=output_activation, input_shape=chw)
