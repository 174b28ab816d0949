"""Tangent propagation: a penalty on how much a network's output moves along given tangents.

Simard et al. (1992), and the Manifold Tangent Classifier of Rifai et al. (2011): for each
sample ``x`` with tangent vectors ``u_1..u_k`` (directions along which the class should not
change: for the MTC, the leading right singular vectors of a CAE's Jacobian at ``x``), the
penalty is

    Omega(x) = sum_j || d o(x) / d x . u_j ||^2,

``o`` the network's output. ``d o / d x . u`` is a Jacobian-vector product, so it is computed
in forward mode with :func:`torch.func.jvp`, vectorised over the ``k`` tangents with
:func:`torch.func.vmap`: ``k`` forward passes' worth of work, and the output's Jacobian
(``n_out x d_x`` per sample) is never formed. The result is differentiable in the model's
parameters, so ``loss + beta * penalty.mean()`` trains them with ordinary autograd.

With ``projections=m`` the ``k`` products become ``m``: each sample's tangents are combined
with random signs, ``v = sum_j eps_j u_j`` (``eps_j = +-1``, independent), and the penalty is
estimated by ``mean_m ||J_o v_m||^2``. Its expectation is exactly ``Omega(x)``, because the
cross terms ``eps_i eps_j u_i^T J^T J u_j`` average to zero (Hutchinson's trick, applied to the
``k x k`` matrix ``U^T J^T J U`` whose trace is ``Omega``). The estimate is unbiased, so its
gradient is an unbiased estimate of the penalty's gradient, and SGD averages the extra noise
away. One projection costs one forward pass instead of ``k``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .exceptions import ConfigError
from .validation import check_int

__all__ = ["tangent_propagation_penalty"]


def tangent_propagation_penalty(
    model: nn.Module,
    x: Tensor,
    tangents: Tensor,
    *,
    projections: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """``sum_j ||J_o(x) u_j||^2`` per sample, by forward-mode Jacobian-vector products.

    Parameters
    ----------
    model : nn.Module
        The network ``o = model(x)``; it must treat samples independently (no batch norm in
        training mode), as the penalty of each sample uses only its own tangents.
    x : Tensor
        Inputs ``(B, *input_shape)``.
    tangents : Tensor
        ``(B, k, *input_shape)``: ``k`` tangent vectors per sample (``k >= 1``), in ``x``'s
        dtype or castable to it (float16 storage is fine).
    projections : int, optional
        Estimate the penalty from this many random-sign combinations of each sample's
        tangents instead of computing all ``k`` products (see the module's docstring): an
        unbiased estimate at ``projections / k`` of the cost. None (the default) is exact.
    generator : torch.Generator, optional
        Draws the signs of ``projections`` (on the CPU); defaults to the global generator.

    Returns
    -------
    Tensor
        ``(B,)``, differentiable in the model's parameters (not in ``x`` or ``tangents``).

    Examples
    --------
    For a linear map the penalty is ``sum_j ||W u_j||^2``:

    >>> import torch
    >>> from torch import nn
    >>> net = nn.Linear(3, 2, bias=False)
    >>> _ = net.weight.data.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]))
    >>> u = torch.eye(3).expand(4, 3, 3)  # every axis, at each of 4 points
    >>> tangent_propagation_penalty(net, torch.rand(4, 3), u)
    tensor([5., 5., 5., 5.], grad_fn=<SumBackward1>)

    One random projection a sample is right on average:

    >>> g = torch.Generator().manual_seed(0)
    >>> many = tangent_propagation_penalty(
    ...     net, torch.rand(4000, 3), u[:1].expand(4000, 3, 3), projections=1, generator=g
    ... )
    >>> round(float(many.detach().mean()))
    5
    """
    from torch.func import jvp, vmap

    if not isinstance(x, Tensor) or not isinstance(tangents, Tensor):
        raise ConfigError(
            "The 'x' and 'tangents' parameters of tangent_propagation_penalty must be tensors. "
            f"Got {type(x).__name__} and {type(tangents).__name__} instead."
        )
    expected = (x.shape[0], "k", *x.shape[1:])
    if (
        tangents.dim() != x.dim() + 1
        or tangents.shape[0] != x.shape[0]
        or (tangents.shape[2:] != x.shape[1:])
    ):
        raise ConfigError(
            "The 'tangents' parameter of tangent_propagation_penalty must have shape "
            f"{expected} for x of shape {tuple(x.shape)}. Got {tuple(tangents.shape)} instead."
        )
    if tangents.shape[1] == 0:
        raise ConfigError(
            "The 'tangents' parameter of tangent_propagation_penalty must hold at least one "
            "tangent per sample (k >= 1). Got k = 0 instead."
        )
    if projections is not None:
        projections = check_int(
            "projections", projections, low=1, owner="tangent_propagation_penalty"
        )
    u = tangents.to(dtype=x.dtype, device=x.device).detach()
    x = x.detach()
    if projections is not None:
        # (B, m, k) independent signs; v = eps @ u: (B, m, *input_shape). 1/sqrt(m) makes the
        # sum over the m projections below their mean.
        signs = torch.randint(0, 2, (u.shape[0], projections, u.shape[1]), generator=generator)
        eps = (2 * signs - 1).to(dtype=u.dtype, device=u.device) / projections**0.5
        u = torch.einsum("bmk,bk...->bm...", eps, u)

    def along(direction: Tensor) -> Tensor:
        return jvp(model, (x,), (direction,))[1]  # (B, *output): J_o(x) u for every sample

    # randomness="same": a dropout layer draws one mask for all k tangents of a step.
    moved = vmap(along, in_dims=1, out_dims=1, randomness="same")(u)  # (B, k, *output)
    return moved.pow(2).flatten(1).sum(1)
