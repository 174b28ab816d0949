"""The analytic contractive penalty of one layer, and the activation derivatives it uses.

For ``h = s(affine(x))`` with an elementwise activation ``s``, the Jacobian is
``diag(s'(a)) W``, so ``||J||_F^2 = sum_j s'(a_j)^2 ||W_j||^2``: one forward pass, no Jacobian.
:func:`layer_forward_with_penalty` computes it with hand-written autograd Functions (fused for
sigmoid and tanh Linear layers); :mod:`contractive.penalties` builds every method on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["activation_derivative", "layer_forward_with_penalty", "row_sq_norms"]

_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


# ---------------------------------------------------------------------------------------------
# Derivatives of elementwise activations, s'(a), from the pre-activation a and the output h.
# Using h where it is cheaper (sigmoid, tanh, elu) saves an exp per unit.


def _gelu_deriv(m: nn.Module, a: Tensor, h: Tensor) -> Tensor:
    if getattr(m, "approximate", "none") == "tanh":
        k = math.sqrt(2.0 / math.pi)
        t = torch.tanh(k * (a + 0.044715 * a**3))
        return 0.5 * (1.0 + t) + 0.5 * a * (1.0 - t * t) * k * (1.0 + 3 * 0.044715 * a * a)
    cdf = 0.5 * (1.0 + torch.erf(a * (1.0 / math.sqrt(2.0))))
    pdf = torch.exp(-0.5 * a * a) * (1.0 / math.sqrt(2.0 * math.pi))
    return cdf + a * pdf


def _softplus_deriv(m: nn.Module, a: Tensor, h: Tensor) -> Tensor:
    beta, threshold = float(m.beta), float(m.threshold)  # type: ignore[arg-type]
    # torch's softplus is the identity where beta * a > threshold.
    return torch.where(a * beta > threshold, torch.ones_like(a), torch.sigmoid(beta * a))


def _mish_deriv(m: nn.Module, a: Tensor, h: Tensor) -> Tensor:
    t = torch.tanh(F.softplus(a))
    return t + a * torch.sigmoid(a) * (1.0 - t * t)


def _step(cond: Tensor, a: Tensor, low: float = 0.0, high: float = 1.0) -> Tensor:
    return torch.where(cond, torch.full_like(a, high), torch.full_like(a, low))


_DERIVATIVES: dict[type[nn.Module], Callable[[nn.Module, Tensor, Tensor], Tensor]] = {
    nn.Identity: lambda m, a, h: torch.ones_like(a),
    nn.Sigmoid: lambda m, a, h: h * (1.0 - h),
    nn.Tanh: lambda m, a, h: 1.0 - h * h,
    nn.ReLU: lambda m, a, h: _step(a > 0, a),
    nn.ReLU6: lambda m, a, h: _step((a > 0) & (a < 6), a),
    nn.LeakyReLU: lambda m, a, h: _step(a > 0, a, float(m.negative_slope)),  # type: ignore[arg-type]
    nn.Softplus: _softplus_deriv,
    nn.ELU: lambda m, a, h: torch.where(a > 0, torch.ones_like(a), h + float(m.alpha)),  # type: ignore[arg-type]
    nn.CELU: lambda m, a, h: torch.where(a > 0, torch.ones_like(a), h / float(m.alpha) + 1.0),  # type: ignore[arg-type]
    nn.SELU: lambda m, a, h: torch.where(
        a > 0, torch.full_like(a, _SELU_SCALE), h + _SELU_SCALE * _SELU_ALPHA
    ),
    nn.GELU: _gelu_deriv,
    nn.SiLU: lambda m, a, h: torch.sigmoid(a) * (1.0 + a * (1.0 - torch.sigmoid(a))),
    nn.Mish: _mish_deriv,
    nn.Hardtanh: lambda m, a, h: _step((a > m.min_val) & (a < m.max_val), a),  # type: ignore[operator]
    nn.Softsign: lambda m, a, h: 1.0 / (1.0 + a.abs()) ** 2,
    nn.LogSigmoid: lambda m, a, h: torch.sigmoid(-a),
    nn.Tanhshrink: lambda m, a, h: torch.tanh(a) ** 2,
    nn.Hardsigmoid: lambda m, a, h: _step((a > -3) & (a < 3), a, 0.0, 1.0 / 6.0),
    nn.Hardswish: lambda m, a, h: torch.where(
        a < -3, torch.zeros_like(a), torch.where(a > 3, torch.ones_like(a), (2 * a + 3) / 6)
    ),
}


def activation_derivative(
    module: nn.Module,
) -> Callable[[nn.Module, Tensor, Tensor], Tensor] | None:
    """The derivative ``s'(a)`` of an elementwise activation module, or ``None``.

    The analytic penalty and :mod:`contractive.analysis` build ``J = diag(s'(a)) W`` from it.
    The module's type must be one of the known activations exactly (a subclass may override
    ``forward`` with another function, so it gets ``None``).

    Parameters
    ----------
    module : nn.Module
        An activation such as ``nn.Sigmoid()`` or ``nn.LeakyReLU(0.1)``.

    Returns
    -------
    callable or None
        ``deriv(module, a, h)`` returning ``s'(a)`` elementwise, from the pre-activation ``a``
        and the output ``h = module(a)`` (whichever is cheaper); ``None`` for a module that is
        not a known elementwise activation.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> act = nn.Sigmoid()
    >>> a = torch.tensor([0.0, 2.0])
    >>> deriv = activation_derivative(act)
    >>> deriv(act, a, act(a))  # s(a) (1 - s(a))
    tensor([0.2500, 0.1050])
    >>> activation_derivative(nn.Linear(2, 2)) is None
    True
    """
    # Exact type match: a subclass may override forward with another function.
    return _DERIVATIVES.get(type(module))


# ---------------------------------------------------------------------------------------------
# Analytic penalty of one layer.


def row_sq_norms(affine: nn.Module, x: Tensor) -> Tensor:
    """Squared norm of each output unit's row of the affine layer's linear operator.

    Linear: ``(d_out,)``. Convolution: ``(C_out, *spatial_out)``, one value per output
    position, from convolving a ones image (the input's spatial size) with the squared kernel.

    Parameters
    ----------
    affine : nn.Module
        ``nn.Linear`` or ``nn.Conv1d`` / ``Conv2d`` / ``Conv3d``.
    x : Tensor
        An input batch (for a convolution, its spatial size matters).

    Returns
    -------
    Tensor

    Examples
    --------
    >>> lin = nn.Linear(2, 2)
    >>> with torch.no_grad():
    ...     _ = lin.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 0.0]]))
    >>> row_sq_norms(lin, torch.zeros(1, 2))
    tensor([5., 9.], grad_fn=<SumBackward1>)
    >>> row_sq_norms(nn.Conv2d(1, 3, 2), torch.zeros(1, 1, 4, 4)).shape
    torch.Size([3, 3, 3])
    """
    weight = affine.weight
    assert isinstance(weight, Tensor)
    w2 = weight * weight
    if isinstance(affine, nn.Linear):
        return w2.sum(dim=1)
    conv: Callable[..., Tensor] = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}[
        type(affine)  # type: ignore[index]
    ]
    ndim = w2.dim() - 2
    if x.dim() != ndim + 2:
        raise ValueError(
            f"{affine!r} needs input of shape (batch, channels, {ndim} spatial dims); "
            f"got shape {tuple(x.shape)}."
        )
    ones = torch.ones((1, *x.shape[1:]), dtype=w2.dtype, device=w2.device)
    return conv(ones, w2, None, affine.stride, affine.padding, affine.dilation, affine.groups)[0]


def _fused_s(h: Tensor, kind: str) -> Tensor:
    """s'(a) from the activation's output: sigmoid h(1 - h), tanh 1 - h^2, else h is s'."""
    if kind == "sigmoid":
        return torch.addcmul(h, h, h, value=-1.0)
    if kind == "tanh":
        return torch.addcmul(torch.ones_like(h), h, h, value=-1.0)
    return h


def _penalty_grad_h(h: Tensor, s: Tensor, norms: Tensor, grad: Tensor, kind: str) -> Tensor:
    """Gradient of ``p_b = sum_i s_bi^2 n_i`` with respect to ``h`` (B, U).

    ``dp_b/dh_bi = 2 g_b s_bi n_i ds_bi/dh_bi``, with ``ds/dh = 1 - 2h`` (sigmoid), ``-2h``
    (tanh), and 1 when ``h`` is ``s'`` itself (``"given"``).
    """
    grad_h = s * (2.0 * grad)[:, None] * norms
    if kind == "sigmoid":
        grad_h = grad_h * (1.0 - 2.0 * h)
    elif kind == "tanh":
        grad_h = grad_h * (-2.0 * h)
    return grad_h


def _penalty_grad_h_(h: Tensor, norms: Tensor, grad: Tensor, kind: str) -> Tensor:
    """:func:`_penalty_grad_h` with one (B, U) allocation and in-place passes (no graph)."""
    two_g = (2.0 * grad)[:, None]  # (B, 1)
    if kind == "sigmoid":
        out = torch.addcmul(h, h, h, value=-1.0)  # s' = h (1 - h)
        out.addcmul_(h, out, value=-2.0)  # s' ds'/dh = s' (1 - 2h)
    elif kind == "tanh":
        out = h.square().sub_(1.0).mul_(h)  # s' ds'/dh / 2 = (1 - h^2)(-h)
        two_g = 2.0 * two_g
    else:
        return torch.mul(h, norms).mul_(two_g)  # h is s' itself: ds'/dh = 1
    return out.mul_(norms).mul_(two_g)


class _LinearPenalty(torch.autograd.Function):
    """``p_b = sum_i s_bi^2 ||W_i||^2`` for a Linear layer, given ``s = s'(a)`` (B, d_h).

    For activations other than sigmoid and tanh (those have :class:`_FusedLinearPenalty`):
    ``s`` comes from the activation's derivative by autograd, and its gradient flows back
    that way. Autograd's version of this sum would keep a (d_h, d_x) temporary for
    ``W * W``; the hand-written backward makes one pass over W.
    """

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, s: Tensor, weight: Tensor) -> Tensor:
        norms = torch.linalg.vector_norm(weight, dim=1).square_()  # (d_h,), one pass over W
        s2 = s * s
        ctx.save_for_backward(s, weight, s2, norms)
        return s2 @ norms

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, Tensor | None]:
        s, weight, s2, norms = ctx.saved_tensors  # type: ignore[attr-defined]
        if torch.is_grad_enabled():
            # create_graph=True (second derivatives, e.g. Hessian-vector products): recompute
            # from the inputs so that the graph of this backward reaches s and W.
            norms = weight.pow(2).sum(dim=1)
            s2 = s * s
        grad_s = None
        if ctx.needs_input_grad[0]:  # type: ignore[attr-defined]
            grad_s = _penalty_grad_h(s, s, norms, grad, "given")
        grad_w = None
        if ctx.needs_input_grad[1]:  # type: ignore[attr-defined]
            # dp/dW_ij = 2 W_ij sum_b g_b s_bi^2
            grad_w = weight * (2.0 * (grad @ s2))[:, None]
        return grad_s, grad_w


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no argument, and the answer is about CUDA
        return device_type == "cuda" and torch.is_autocast_enabled()


# ``grad * s'(a)`` from the activation's output, in one op (autograd's own backward).
_ACTIVATION_BACKWARD = {
    "sigmoid": torch.ops.aten.sigmoid_backward.default,
    "tanh": torch.ops.aten.tanh_backward.default,
}


class _FusedLinearPenalty(torch.autograd.Function):
    """``h = s(x W^T + b)`` and ``p = sum_i s'(a_i)^2 ||W_i||^2`` per row, in one Function.

    The penalty's gradient with respect to W, ``diag(c) W`` with ``c_i = 2 sum_b g_b
    s'_bi^2``, is a dense (d_h, d_x) matrix. Returned by a separate penalty Function it is one
    more W-sized tensor that autograd then adds to the layer's own gradient (two extra passes
    over W, as costly as the penalty's other work together). Owning the layer lets the
    backward start the layer's weight gradient from ``diag(c) W`` and let the matrix product
    ``grad_a^T x`` accumulate onto it in place (``addmm_``), and fold the penalty's gradient
    with respect to h into the activation's backward. ``kind`` is ``"sigmoid"`` or ``"tanh"``.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        kind: str,
    ) -> tuple[Tensor, Tensor]:
        # x (N, d_x), weight (d_h, d_x), bias (d_h,) or None
        a = F.linear(x, weight, bias)  # (N, d_h)
        h = a.sigmoid_() if kind == "sigmoid" else a.tanh_()
        norms = torch.linalg.vector_norm(weight, dim=1).square_()  # (d_h,), one pass over W
        s2 = _fused_s(h, kind)
        s2.mul_(s2)  # (N, d_h): s'^2
        ctx.save_for_backward(x, weight, h, norms, s2, *(() if bias is None else (bias,)))
        ctx.kind = kind  # type: ignore[attr-defined,unused-ignore]
        ctx.set_materialize_grads(False)
        return h, s2 @ norms

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad_h: Tensor | None, grad_p: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None]:
        x, weight, h, norms, s2, *rest = ctx.saved_tensors  # type: ignore[attr-defined]
        bias = rest[0] if rest else None
        kind: str = ctx.kind  # type: ignore[attr-defined]
        needs_x, needs_w, needs_b = ctx.needs_input_grad[:3]  # type: ignore[attr-defined]
        if torch.is_grad_enabled():
            # create_graph=True (second derivatives): differentiate the same computation done
            # with autograd's ops, so that the gradients' graph reaches x, W and b.
            return (*_fused_linear_reference_grads(x, weight, bias, kind, grad_h, grad_p), None)
        # grad_a (N, d_h) = s' grad_h + dp/da, where dp_b/da_bi = 2 g_b n_i s'_bi ds'_bi/da_bi
        # and ds'/da = s' (1 - 2h) (sigmoid) or -2 h s' (tanh): a multiple of s'^2 = s2.
        # s' grad_h in one op, as autograd's own activation backward does
        grad_a = torch.zeros_like(h) if grad_h is None else _ACTIVATION_BACKWARD[kind](grad_h, h)
        if grad_p is not None:
            if kind == "sigmoid":
                ds = torch.addcmul(s2, h, s2, value=-2.0)  # s'^2 (1 - 2h)
                coef = 2.0 * grad_p
            else:
                ds = h * s2  # h s'^2; the factor -4 goes into coef
                coef = -4.0 * grad_p
            grad_a.addcmul_(ds, torch.outer(coef, norms))  # (N, d_h)
        grad_x = grad_a @ weight if needs_x else None  # (N, d_x)
        grad_w = None
        if needs_w:
            if grad_p is None:
                grad_w = grad_a.T @ x
            else:
                c = (2.0 * grad_p) @ s2  # (d_h,)
                # diag(c) W + grad_a^T x, the product accumulated in place: one W-sized tensor
                grad_w = torch.mul(weight, c[:, None]).addmm_(grad_a.T, x)
        grad_b = grad_a.sum(dim=0) if needs_b and bias is not None else None
        return grad_x, grad_w, grad_b, None


def _fused_linear_reference_grads(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    kind: str,
    grad_h: Tensor | None,
    grad_p: Tensor | None,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """:class:`_FusedLinearPenalty`'s backward through autograd, keeping the graph."""
    h = (
        torch.sigmoid(F.linear(x, weight, bias))
        if kind == "sigmoid"
        else torch.tanh(F.linear(x, weight, bias))
    )
    s = _fused_s(h, kind)
    p = (s * s) @ weight.pow(2).sum(dim=1)
    outputs = [t for t, g in ((h, grad_h), (p, grad_p)) if g is not None]
    grads = [g for g in (grad_h, grad_p) if g is not None]
    wanted = [t for t in (x, weight, bias) if t is not None and t.requires_grad]
    found = iter(torch.autograd.grad(outputs, wanted, grads, create_graph=True, allow_unused=True))
    return tuple(  # type: ignore[return-value]
        next(found) if t is not None and t.requires_grad else None for t in (x, weight, bias)
    )


class _UnitPenalty(torch.autograd.Function):
    """``p_b = sum_u s'_bu^2 n_u`` for given per-unit squared row norms ``n`` (U,).

    The convolution's twin of :class:`_LinearPenalty`: ``n`` comes from autograd (a
    convolution of a ones image with the squared kernel), and the elementwise work on the
    (B, U) activations, which dominates a cheap convolution, is fused by hand. A (B, U)
    tensor of a conv layer is megabytes, and every fresh one costs page faults as well as a
    memory pass, so forward and backward each allocate one and work on it in place.
    """

    @staticmethod
    def forward(
        ctx: torch.autograd.function.FunctionCtx, h: Tensor, norms: Tensor, kind: str
    ) -> Tensor:
        s2 = _fused_s(h, kind)  # (B, U): s'
        s2 = s2.mul_(s2) if s2 is not h else s2 * s2  # s'^2, in place unless s' is the input
        ctx.save_for_backward(h, norms, s2)
        ctx.kind = kind  # type: ignore[attr-defined,unused-ignore]
        return s2 @ norms

    @staticmethod
    def backward(
        ctx: torch.autograd.function.FunctionCtx, grad: Tensor
    ) -> tuple[Tensor | None, Tensor | None, None]:
        h, norms, s2 = ctx.saved_tensors  # type: ignore[attr-defined]
        kind: str = ctx.kind  # type: ignore[attr-defined]
        needs_h, needs_n = ctx.needs_input_grad[:2]  # type: ignore[attr-defined]
        grad_h = grad_n = None
        if torch.is_grad_enabled():  # create_graph=True: keep the graph to h
            s = _fused_s(h, kind)
            s2 = s * s
            if needs_h:
                grad_h = _penalty_grad_h(h, s, norms, grad, kind)
        elif needs_h:
            grad_h = _penalty_grad_h_(h, norms, grad, kind)
        if needs_n:
            grad_n = grad @ s2  # (U,)
        return grad_h, grad_n, None


_FUSED_KIND: dict[type[nn.Module], str] = {nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}


def layer_forward_with_penalty(
    affine: nn.Module, activation: nn.Module | None, x: Tensor
) -> tuple[Tensor, Tensor]:
    """Run one layer, ``activation(affine(x))``, and its analytic penalty ``||J(x)||_F^2``.

    Parameters
    ----------
    affine : nn.Module
        ``nn.Linear`` or ``nn.Conv1d`` / ``Conv2d`` / ``Conv3d``.
    activation : nn.Module or None
        An elementwise activation that :func:`activation_derivative` knows; None: identity.
    x : Tensor
        The layer's input batch.

    Returns
    -------
    h : Tensor
        The layer's output.
    penalty : Tensor
        ``(B,)``, the squared Frobenius norm of each sample's Jacobian of ``h`` in ``x``.

    Examples
    --------
    >>> lin = nn.Linear(3, 2)
    >>> x = torch.randn(4, 3)
    >>> h, penalty = layer_forward_with_penalty(lin, nn.Sigmoid(), x)
    >>> h.shape, penalty.shape
    (torch.Size([4, 2]), torch.Size([4]))
    >>> J = torch.func.vmap(torch.func.jacrev(lambda v: torch.sigmoid(lin(v))))(x)
    >>> torch.allclose(penalty, (J**2).sum(dim=(1, 2)))
    True
    """
    act = activation
    kind = None if act is None else _FUSED_KIND.get(type(act))
    if kind is not None and isinstance(affine, nn.Linear) and not _autocast_enabled(x.device.type):
        # A Linear applied at several positions of a sample: rows (B * positions, d_x).
        rows = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
        h, penalty = _FusedLinearPenalty.apply(rows, affine.weight, affine.bias, kind)
        if x.dim() == 2:
            return h, penalty
        return h.reshape(*x.shape[:-1], -1), penalty.reshape(x.shape[0], -1).sum(dim=1)
    a = affine(x)  # (B, d_h) or (B, C_out, *spatial)
    if act is None or type(act) is nn.Identity:
        norms = row_sq_norms(affine, x)
        # s' = 1: the penalty is ||W||_F^2 (L2 weight decay), the same for every sample; a
        # Linear applied at several positions of one sample counts once per position.
        total = norms.sum()
        if isinstance(affine, nn.Linear):
            total = total * (a[0].numel() // a.shape[-1])
        return a, total.expand(x.shape[0])
    h = act(a)
    if isinstance(affine, nn.Linear):
        # Other activations (or autocast): s' from the activation's derivative, by autograd.
        deriv = activation_derivative(act)
        assert deriv is not None
        s_rows = deriv(act, a, h).reshape(-1, h.shape[-1])  # (B * positions, d_h)
        penalty = _LinearPenalty.apply(s_rows, affine.weight)
        return h, penalty.reshape(x.shape[0], -1).sum(dim=1)
    # Convolution: every output position is a unit with its own row norm N (C_out, *spatial).
    norms = row_sq_norms(affine, x).reshape(-1)  # (U,), U = C_out * prod(spatial)
    if kind is None:
        deriv = activation_derivative(act)
        assert deriv is not None
        rows, kind = deriv(act, a, h).reshape(x.shape[0], -1), "given"
    else:
        rows = h.reshape(x.shape[0], -1)  # (B, U), a view
    return h, _UnitPenalty.apply(rows, norms, kind)
