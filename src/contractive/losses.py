"""Reconstruction losses, summed over features and averaged over the batch.

Summing over features (not averaging) keeps the reconstruction term on the scale of the
squared Frobenius norm of the Jacobian, which is also a sum (over d_h x d_x entries). Both
terms are then averaged over the batch, so the ratio of the two, and hence the meaning of
``contraction`` (lambda), is the one of Rifai et al. (2011), where both are summed over the
data set. Averaging the reconstruction over features instead would shrink it by d_x (784 on
MNIST) and silently make every lambda 784 times stronger.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor

from .nn import AutoencoderOutput
from .validation import check_choice

__all__ = ["LOSSES", "bce_loss", "mse_loss", "reconstruction_loss"]


def bce_loss(logits: Tensor, x: Tensor) -> Tensor:
    """Binary cross-entropy from logits, per sample: ``(B,)``.

    ``sum_j -[x_j log sigmoid(l_j) + (1 - x_j) log(1 - sigmoid(l_j))]`` for targets ``x`` in
    [0, 1] (not only {0, 1}: grey levels are fine). Computed from logits for numerical
    stability: ``sigmoid`` followed by ``log`` underflows where the decoder is confident.

    Examples
    --------
    >>> import torch
    >>> bce_loss(torch.zeros(2, 3), torch.full((2, 3), 0.5))
    tensor([2.0794, 2.0794])
    """
    per_entry = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_entry.reshape(x.shape[0], -1).sum(dim=1)


def mse_loss(x_hat: Tensor, x: Tensor) -> Tensor:
    """Squared error, per sample: ``sum_j (x_hat_j - x_j)^2``, shape ``(B,)``.

    Examples
    --------
    >>> import torch
    >>> mse_loss(torch.ones(2, 3), torch.zeros(2, 3))
    tensor([3., 3.])
    """
    return (x_hat - x).pow(2).reshape(x.shape[0], -1).sum(dim=1)


#: Loss name -> (function of (model output, target) giving (B,), output activation it expects).
LOSSES: dict[str, tuple[Callable[[AutoencoderOutput, Tensor], Tensor], str]] = {
    "bce": (lambda out, x: bce_loss(out.logits, x), "sigmoid"),
    "mse": (lambda out, x: mse_loss(out.x_hat, x), "identity"),
}


def reconstruction_loss(out: AutoencoderOutput, x: Tensor, loss: str = "bce") -> Tensor:
    """Per-sample reconstruction loss ``(B,)`` of a model output against its input ``x``.

    Parameters
    ----------
    out : AutoencoderOutput
        What :class:`contractive.nn.Autoencoder` returned for ``x``.
    x : Tensor
        The clean target ``(B, ...)``.
    loss : {"bce", "mse"}
        ``"bce"`` reads ``out.logits`` (the model's output activation should be sigmoid);
        ``"mse"`` reads ``out.x_hat``.

    Examples
    --------
    >>> import torch
    >>> from contractive.nn import mlp_autoencoder
    >>> model = mlp_autoencoder([4, 2])
    >>> x = torch.rand(3, 4)
    >>> reconstruction_loss(model(x), x).shape
    torch.Size([3])
    """
    return LOSSES[check_choice("loss", loss, LOSSES)][0](out, x)
