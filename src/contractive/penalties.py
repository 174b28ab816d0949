"""Jacobian penalties: ||J_f(x)||_F^2 per sample, exact or estimated, and the CAE+H term.

Every function here returns one value per sample, shape ``(B,)``, differentiable with respect
to the encoder's parameters. The training objective is
``reconstruction + contraction * penalty.mean()``: the penalty is the squared Frobenius norm of
each sample's Jacobian (summed over all its entries, never averaged over them) and the batch
mean matches the batch mean of the reconstruction loss, so ``contraction`` has the scale of
Rifai et al. (2011), where both terms are summed over the data set.

Methods
-------
``"analytic"``
    Exact and cheap for one affine layer (``nn.Linear`` or ``nn.Conv1d/2d/3d``, any stride,
    padding, dilation, groups, with or without bias) followed by one elementwise activation.
    For ``a = W x + b`` and ``h = s(a)``, ``J = diag(s'(a)) W``, so
    ``||J||_F^2 = sum_i s'(a_i)^2 ||W_i||^2``, where ``W_i`` is the row of the layer's linear
    operator that produces unit ``i``. For a convolution each output position has its own row
    norm (positions near a zero-padded border see fewer input pixels), obtained by convolving
    an all-ones image with the squared kernel. No per-sample Jacobian is ever built.
``"exact"``
    Any differentiable encoder: the full per-sample Jacobian with :func:`torch.func.jacrev` or
    :func:`torch.func.jacfwd` (whichever needs fewer passes for the shapes), vmapped over the
    batch in chunks that bound memory.
``"hutchinson"``
    Unbiased estimate ``mean_k ||J v_k||^2`` over ``probes`` Rademacher directions ``v_k``
    (entries +-1, so ``E[v v^T] = I``), computed in the same forward pass as the code (the
    tangent ``J v`` carried layer by layer, or forward-mode AD for other encoders). Its
    variance per sample is ``2 (||J^T J||_F^2 - sum_j (J^T J)_jj^2) / probes``, below the
    ``2 ||J^T J||_F^2 / probes`` of Gaussian directions; it is small when J has a few
    dominant singular values, which is what a trained CAE has.
``"auto"``
    Analytic when the encoder has that form, exact when the Jacobian needs at most
    :data:`AUTO_EXACT_MAX_PASSES` vectorised passes, hutchinson otherwise.
``"layerwise"``
    For a stack of (affine, activation) layers: the sum of each layer's analytic penalty with
    respect to that layer's own input, as in greedy layer-wise training. This is a different
    quantity from the end-to-end ``||J_f(x)||_F^2`` (it ignores how the layers' Jacobians
    multiply), and only equals it for a single layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import forward_ad

from .exceptions import UnsupportedEncoderError
from .validation import check_choice, check_int, check_real

__all__ = [
    "AUTO_EXACT_MAX_PASSES",
    "METHODS",
    "Method",
    "activation_derivative",
    "analytic_supported",
    "encode_with_penalty",
    "exact_jacobian",
    "flatten_sequential",
    "higher_order_penalty",
    "jacobian_penalty",
]

Method = Literal["auto", "analytic", "exact", "hutchinson", "layerwise"]
#: Accepted values of ``method``.
METHODS: tuple[str, ...] = ("auto", "analytic", "exact", "hutchinson", "layerwise")
#: ``method="auto"`` builds the exact Jacobian when min(d_in, d_out) is at most this.
AUTO_EXACT_MAX_PASSES = 64
#: The exact method processes the batch in chunks of at most this many Jacobian entries.
EXACT_CHUNK_ELEMENTS = 1 << 24

_AFFINE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Modules that only reshape: their Jacobian is a permutation, which keeps Frobenius norms.
_RESHAPE = (nn.Flatten, nn.Unflatten)
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
# Reading an encoder's structure.


@dataclass(frozen=True)
class _Layer:
    """One affine map and the elementwise activation after it (``None``: identity)."""

    affine: nn.Module
    activation: nn.Module | None


def flatten_sequential(module: nn.Module) -> Iterator[nn.Module]:
    """The modules an encoder applies, in order, with nested ``nn.Sequential`` opened.

    Only ``nn.Sequential`` itself is opened (not a subclass, whose ``forward`` may differ); any
    other module, including the encoder itself when it is not a Sequential, is yielded whole.

    Examples
    --------
    >>> from torch import nn
    >>> enc = nn.Sequential(nn.Sequential(nn.Linear(4, 3), nn.Sigmoid()), nn.Linear(3, 2))
    >>> [type(m).__name__ for m in flatten_sequential(enc)]
    ['Linear', 'Sigmoid', 'Linear']
    >>> [type(m).__name__ for m in flatten_sequential(nn.Tanh())]
    ['Tanh']
    """
    if type(module) is nn.Sequential:
        for child in module:
            yield from flatten_sequential(child)
    else:
        yield module


def _unsupported(module: nn.Module, why: str) -> UnsupportedEncoderError:
    return UnsupportedEncoderError(
        f"method='analytic' cannot handle {module!r}: {why}. Use method='exact' "
        "(full Jacobian, any encoder) or method='hutchinson' (random-projection estimate)."
    )


def _check_affine(module: nn.Module) -> None:
    if isinstance(module, nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d):
        if type(module) not in _AFFINE:
            raise _unsupported(module, "it is a subclass whose forward may differ")
        if isinstance(module, nn.Conv1d | nn.Conv2d | nn.Conv3d) and module.padding_mode != "zeros":
            raise _unsupported(
                module, f"padding_mode={module.padding_mode!r} repeats input pixels in a row"
            )
        return
    raise _unsupported(module, "expected nn.Linear or nn.Conv1d/2d/3d here")


def _parse_steps(encoder: nn.Module) -> list[_Layer | nn.Module]:
    """Split an encoder into (affine, activation) layers and reshape modules, in order.

    Raises UnsupportedEncoderError on anything else.
    """
    steps: list[_Layer | nn.Module] = []
    pending: nn.Module | None = None
    for module in flatten_sequential(encoder):
        if isinstance(module, _RESHAPE) and pending is None:
            steps.append(module)
        elif pending is None:
            _check_affine(module)
            pending = module
        elif isinstance(module, (*_AFFINE, *_RESHAPE)):
            steps.append(_Layer(pending, None))
            pending = None
            if isinstance(module, _RESHAPE):
                steps.append(module)
            else:
                _check_affine(module)
                pending = module
        else:
            if activation_derivative(module) is None:
                raise _unsupported(
                    module, "it is not an elementwise activation with a known derivative"
                )
            steps.append(_Layer(pending, module))
            pending = None
    if pending is not None:
        steps.append(_Layer(pending, None))
    if not any(isinstance(step, _Layer) for step in steps):
        raise _unsupported(encoder, "it has no affine layer")
    return steps


def _single_layer_steps(encoder: nn.Module) -> list[_Layer | nn.Module]:
    """The encoder's steps, which hold exactly one affine layer, or a clear error."""
    steps = _parse_steps(encoder)
    layers = [step for step in steps if isinstance(step, _Layer)]
    if len(layers) != 1:
        raise UnsupportedEncoderError(
            f"method='analytic' needs one affine layer and one elementwise activation, but the "
            f"encoder has {len(layers)} affine layers ({layers[1].affine!r} is the second). "
            "Use method='exact' or method='hutchinson' for the end-to-end Jacobian, or "
            "method='layerwise' for the sum of per-layer penalties."
        )
    return steps


def _single_layer(encoder: nn.Module) -> _Layer:
    (layer,) = (step for step in _single_layer_steps(encoder) if isinstance(step, _Layer))
    return layer


def analytic_supported(encoder: nn.Module) -> bool:
    """Whether ``method="analytic"`` can handle ``encoder``.

    Examples
    --------
    >>> from torch import nn
    >>> analytic_supported(nn.Sequential(nn.Linear(4, 3), nn.Tanh()))
    True
    >>> analytic_supported(nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2)))
    False
    """
    try:
        _single_layer(encoder)
    except UnsupportedEncoderError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Analytic penalty of one layer.


def _row_sq_norms(affine: nn.Module, x: Tensor) -> Tensor:
    """Squared norm of each output unit's row of the affine layer's linear operator.

    Linear: ``(d_out,)``. Convolution: ``(C_out, *spatial_out)``, one value per output
    position, from convolving a ones image (the input's spatial size) with the squared kernel.
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


def _layer_forward_with_penalty(layer: _Layer, x: Tensor) -> tuple[Tensor, Tensor]:
    act = layer.activation
    kind = None if act is None else _FUSED_KIND.get(type(act))
    if (
        kind is not None
        and isinstance(layer.affine, nn.Linear)
        and not _autocast_enabled(x.device.type)
    ):
        # A Linear applied at several positions of a sample: rows (B * positions, d_x).
        rows = x if x.dim() == 2 else x.reshape(-1, x.shape[-1])
        h, penalty = _FusedLinearPenalty.apply(rows, layer.affine.weight, layer.affine.bias, kind)
        if x.dim() == 2:
            return h, penalty
        return h.reshape(*x.shape[:-1], -1), penalty.reshape(x.shape[0], -1).sum(dim=1)
    a = layer.affine(x)  # (B, d_h) or (B, C_out, *spatial)
    if act is None or type(act) is nn.Identity:
        norms = _row_sq_norms(layer.affine, x)
        # s' = 1: the penalty is ||W||_F^2 (L2 weight decay), the same for every sample; a
        # Linear applied at several positions of one sample counts once per position.
        total = norms.sum()
        if isinstance(layer.affine, nn.Linear):
            total = total * (a[0].numel() // a.shape[-1])
        return a, total.expand(x.shape[0])
    h = act(a)
    if isinstance(layer.affine, nn.Linear):
        # Other activations (or autocast): s' from the activation's derivative, by autograd.
        deriv = activation_derivative(act)
        assert deriv is not None
        s_rows = deriv(act, a, h).reshape(-1, h.shape[-1])  # (B * positions, d_h)
        penalty = _LinearPenalty.apply(s_rows, layer.affine.weight)
        return h, penalty.reshape(x.shape[0], -1).sum(dim=1)
    # Convolution: every output position is a unit with its own row norm N (C_out, *spatial).
    norms = _row_sq_norms(layer.affine, x).reshape(-1)  # (U,), U = C_out * prod(spatial)
    if kind is None:
        deriv = activation_derivative(act)
        assert deriv is not None
        rows, kind = deriv(act, a, h).reshape(x.shape[0], -1), "given"
    else:
        rows = h.reshape(x.shape[0], -1)  # (B, U), a view
    return h, _UnitPenalty.apply(rows, norms, kind)


# ---------------------------------------------------------------------------------------------
# Exact and Hutchinson penalties.


def _numel(shape: torch.Size) -> int:
    return int(math.prod(shape))


def _out_numel(encoder: nn.Module, x: Tensor) -> int:
    with torch.no_grad():
        return _numel(encoder(x[:1]).shape[1:])


def exact_jacobian(encoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample Jacobians of any differentiable encoder, and its codes, in one pass.

    What ``method="exact"`` squares and sums: :func:`torch.func.jacrev` or
    :func:`torch.func.jacfwd` (whichever needs fewer passes for the shapes), vmapped over the
    batch in chunks of at most :data:`EXACT_CHUNK_ELEMENTS` Jacobian entries.

    Parameters
    ----------
    encoder : nn.Module
        Maps a batch ``(B, *input)`` to codes ``(B, *code)``; samples must not interact.
    x : Tensor
        The batch ``(B, *input)``.

    Returns
    -------
    jacobians : Tensor
        ``(B, d_out, d_in)``: ``d f(x_b) / d x_b`` with code and input flattened;
        differentiable with respect to the encoder's parameters.
    codes : Tensor
        ``(B, *code)``, the encoder's output.

    Examples
    --------
    One tanh layer, whose Jacobian is also ``diag(1 - h^2) W``:

    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Sequential(nn.Linear(3, 2), nn.Tanh())
    >>> jac, codes = exact_jacobian(enc, torch.rand(4, 3))
    >>> jac.shape, codes.shape
    (torch.Size([4, 2, 3]), torch.Size([4, 2]))
    >>> torch.allclose(jac, (1 - codes**2)[:, :, None] * enc[0].weight)
    True
    """
    from torch.func import jacfwd, jacrev, vmap

    d_in = _numel(x.shape[1:])
    d_out = _out_numel(encoder, x)

    def f(xi: Tensor) -> tuple[Tensor, Tensor]:
        out = encoder(xi.unsqueeze(0)).squeeze(0)
        return out.reshape(-1), out

    # jacfwd costs d_in tangent passes, jacrev d_out cotangent passes.
    jac = jacfwd(f, has_aux=True) if d_in < d_out else jacrev(f, has_aux=True)
    batched = vmap(jac)
    chunk = max(1, EXACT_CHUNK_ELEMENTS // max(1, d_in * d_out))
    jacs, codes = [], []
    for start in range(0, x.shape[0], chunk):
        j, h = batched(x[start : start + chunk])
        jacs.append(j.reshape(j.shape[0], d_out, d_in))
        codes.append(h)
    return torch.cat(jacs), torch.cat(codes)


def _exact(encoder: nn.Module, x: Tensor) -> tuple[Tensor, Tensor]:
    jac, code = exact_jacobian(encoder, x)
    return code, jac.pow(2).sum(dim=(1, 2))


def _rademacher(shape: torch.Size, like: Tensor, generator: torch.Generator | None) -> Tensor:
    v = torch.empty(shape, dtype=like.dtype, device=like.device).bernoulli_(
        0.5, generator=generator
    )
    return v.mul_(2.0).sub_(1.0)


def _jvp(encoder: nn.Module, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """``(f(x), J_f(x) v)`` in one pass; differentiable w.r.t. parameters.

    For a stack of affine layers and elementwise activations the tangent is carried by hand,
    ``t <- s'(a) * (W t)``, which costs one extra matrix product per layer; the generic
    forward-mode AD of other encoders does the same work with more bookkeeping (1.8x a
    plain training step against 1.5x on the 784-1000-500-100 benchmark).
    """
    try:
        steps = _parse_steps(encoder)
    except UnsupportedEncoderError:
        return _jvp_forward_ad(encoder, x, v)
    h, t = x, v
    for step in steps:
        if not isinstance(step, _Layer):
            h, t = step(h), step(t)
            continue
        a = step.affine(h)
        t = _linear_part(step.affine, t)
        h = a if step.activation is None else step.activation(a)
        if step.activation is not None and type(step.activation) is not nn.Identity:
            deriv = activation_derivative(step.activation)
            assert deriv is not None
            t = t * deriv(step.activation, a, h)
    return h, t


def _linear_part(affine: nn.Module, t: Tensor) -> Tensor:
    """The affine layer's linear map (no bias) applied to a tangent."""
    weight = affine.weight
    assert isinstance(weight, Tensor)
    if isinstance(affine, nn.Linear):
        return F.linear(t, weight)
    conv: Callable[..., Tensor] = {nn.Conv1d: F.conv1d, nn.Conv2d: F.conv2d, nn.Conv3d: F.conv3d}[
        type(affine)  # type: ignore[index]
    ]
    return conv(t, weight, None, affine.stride, affine.padding, affine.dilation, affine.groups)


def _jvp_forward_ad(encoder: nn.Module, x: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Forward-mode AD: any differentiable encoder."""
    with forward_ad.dual_level():
        out = encoder(forward_ad.make_dual(x, v))
        h, jv = forward_ad.unpack_dual(out)
    if jv is None:  # the output does not depend on x
        jv = torch.zeros_like(h)
    return h, jv


def _hutchinson(
    encoder: nn.Module, x: Tensor, probes: int, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    b = x.shape[0]
    xs = x if probes == 1 else x.repeat(probes, *([1] * (x.dim() - 1)))  # (P*B, ...)
    v = _rademacher(xs.shape, x, generator)
    h, jv = _jvp(encoder, xs, v)
    penalty = jv.pow(2).reshape(probes, b, -1).sum(dim=2).mean(dim=0)
    return h[:b], penalty


# ---------------------------------------------------------------------------------------------
# Public API.


def _resolve(encoder: nn.Module, x: Tensor, method: str) -> str:
    if method != "auto":
        return method
    if analytic_supported(encoder):
        return "analytic"
    small = min(_numel(x.shape[1:]), _out_numel(encoder, x)) <= AUTO_EXACT_MAX_PASSES
    return "exact" if small else "hutchinson"


def encode_with_penalty(
    encoder: nn.Module,
    x: Tensor,
    *,
    method: Method | str = "auto",
    probes: int = 1,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Code ``f(x)`` and per-sample ``||J_f(x)||_F^2`` from one shared forward pass.

    Training uses this form: the analytic method reuses the pre-activations of the forward
    pass, the Hutchinson method takes the code from the same forward-mode pass that gives
    ``J v``, and the exact method returns the code from the vmapped Jacobian computation.

    Parameters
    ----------
    encoder : nn.Module
        Maps a batch ``(B, ...)`` to codes ``(B, ...)``; samples must not interact (no
        batch norm in training mode).
    x : Tensor
        Input batch ``(B, ...)``.
    method : {"auto", "analytic", "exact", "hutchinson", "layerwise"}
        See the module docstring.
    probes : int
        Number of random directions for ``"hutchinson"``; the variance falls as ``1/probes``.
    generator : torch.Generator, optional
        Source of the Hutchinson directions, for reproducible estimates.

    Returns
    -------
    code : Tensor
        ``encoder(x)``, shape ``(B, ...)``.
    penalty : Tensor
        ``(B,)``, differentiable with respect to the encoder's parameters.

    Raises
    ------
    UnsupportedEncoderError
        ``method="analytic"`` or ``"layerwise"`` on an encoder without that structure.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Sequential(nn.Linear(6, 4), nn.Sigmoid())
    >>> h, pen = encode_with_penalty(enc, torch.rand(3, 6), method="analytic")
    >>> h.shape, pen.shape
    (torch.Size([3, 4]), torch.Size([3]))
    """
    check_choice("method", method, METHODS)
    probes = check_int("probes", probes, low=1)
    if method in ("analytic", "auto"):
        # Parsed once: at a training step's size this Python work is not negligible.
        try:
            steps = _single_layer_steps(encoder)  # one affine layer, or a clear error
        except UnsupportedEncoderError:
            if method == "analytic":
                raise
        else:
            return _layerwise_steps(steps, x)  # with one layer, layer-wise is the exact penalty
    resolved = _resolve(encoder, x, method)
    if resolved == "layerwise":
        return _layerwise_steps(_parse_steps(encoder), x)
    if resolved == "exact":
        return _exact(encoder, x)
    return _hutchinson(encoder, x, probes, generator)


def jacobian_penalty(
    encoder: nn.Module,
    x: Tensor,
    *,
    method: Method | str = "auto",
    probes: int = 1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample squared Frobenius norm of the encoder's Jacobian, ``||J_f(x_i)||_F^2``.

    The same value as the second output of :func:`encode_with_penalty`; see there and the
    module docstring for the methods.

    Returns
    -------
    Tensor
        Shape ``(B,)``, differentiable with respect to the encoder's parameters.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Linear(3, 2, bias=False)
    >>> _ = nn.init.ones_(enc.weight)
    >>> jacobian_penalty(enc, torch.zeros(2, 3), method="analytic")
    tensor([6., 6.], grad_fn=<...>)
    """
    return encode_with_penalty(encoder, x, method=method, probes=probes, generator=generator)[1]


def _layerwise_steps(steps: list[_Layer | nn.Module], x: Tensor) -> tuple[Tensor, Tensor]:
    """Run parsed steps; the sum of the affine layers' analytic penalties (B,)."""
    total: Tensor | None = None
    h = x
    for step in steps:
        if isinstance(step, _Layer):
            h, penalty = _layer_forward_with_penalty(step, h)
            total = penalty if total is None else total + penalty
        else:
            h = step(h)
    assert total is not None  # _parse_steps demands an affine layer
    return h, total


def higher_order_penalty(
    encoder: nn.Module,
    x: Tensor,
    *,
    sigma: float,
    corruptions: int,
    generator: torch.Generator | None = None,
    method: Method | str = "auto",
) -> Tensor:
    """CAE+H term: per-sample estimate of ``E_eps ||J_f(x) - J_f(x + eps)||_F^2``.

    ``eps ~ N(0, sigma^2 I)``; the expectation is the mean over ``corruptions`` draws (Rifai et
    al., ECML-PKDD 2011). Like the first-order penalty it is a sum over Jacobian entries, not a
    mean, so ``gamma`` keeps one scale whatever the layer sizes.

    With ``method="analytic"`` (one affine layer + elementwise activation) no Jacobian is built:
    ``||J(x) - J(x~)||_F^2 = sum_i (s'(a_i) - s'(a~_i))^2 ||W_i||^2``. ``"exact"`` builds both
    Jacobians; ``"hutchinson"`` uses one Rademacher direction per corruption, shared by ``x`` and
    ``x~``, which is unbiased for the same quantity.

    Parameters
    ----------
    encoder : nn.Module
        The encoder ``f``.
    x : Tensor
        Input batch ``(B, ...)``.
    sigma : float
        Standard deviation of the Gaussian corruption.
    corruptions : int
        Number of corrupted copies of each sample.
    generator : torch.Generator, optional
        Source of the corruptions (and Hutchinson directions).
    method : str
        As in :func:`jacobian_penalty`, except ``"layerwise"``.

    Returns
    -------
    Tensor
        ``(B,)``, differentiable with respect to the encoder's parameters.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> enc = nn.Sequential(nn.Linear(5, 3), nn.Tanh())
    >>> higher_order_penalty(enc, torch.rand(4, 5), sigma=0.1, corruptions=2).shape
    torch.Size([4])
    """
    check_choice("method", method, METHODS)
    if method == "layerwise":
        raise ValueError("higher_order_penalty does not support method='layerwise'.")
    sigma = check_real("sigma", sigma, low=0, closed="neither")
    corruptions = check_int("corruptions", corruptions, low=1)
    b = x.shape[0]
    reps = (corruptions, *([1] * (x.dim() - 1)))
    eps = torch.randn(
        (corruptions * b, *x.shape[1:]), generator=generator, dtype=x.dtype, device=x.device
    )
    x_tilde = x.repeat(reps) + sigma * eps  # (C*B, ...)
    resolved = _resolve(encoder, x, method)

    if resolved == "analytic":
        layer = _single_layer(encoder)
        both = torch.cat([x, x_tilde])  # one affine call for clean and corrupted inputs
        for step in _parse_steps(encoder):  # reshapes before the layer (after it: no effect)
            if isinstance(step, _Layer):
                break
            both = step(both)
        a = layer.affine(both)
        norms = _row_sq_norms(layer.affine, both[:b])
        if layer.activation is None:
            return x.new_zeros(b)  # a linear encoder has a constant Jacobian
        h = layer.activation(a)
        deriv = activation_derivative(layer.activation)
        assert deriv is not None
        s = deriv(layer.activation, a, h)
        s_clean, s_tilde = s[:b], s[b:]
        diff2 = (s_clean.repeat((corruptions, *([1] * (s.dim() - 1)))) - s_tilde) ** 2
        if isinstance(layer.affine, nn.Linear):
            per = (diff2 @ norms).reshape(corruptions * b, -1).sum(dim=1)
        else:
            per = (diff2 * norms).flatten(1).sum(dim=1)
        return per.reshape(corruptions, b).mean(dim=0)

    if resolved == "exact":
        j_clean, _ = exact_jacobian(encoder, x)
        j_tilde, _ = exact_jacobian(encoder, x_tilde)
        diff = j_clean.repeat(corruptions, 1, 1) - j_tilde
        return diff.pow(2).sum(dim=(1, 2)).reshape(corruptions, b).mean(dim=0)

    v = _rademacher(x_tilde.shape, x, generator)
    _, jv = _jvp(encoder, torch.cat([x.repeat(reps), x_tilde]), torch.cat([v, v]))
    n = corruptions * b
    per = (jv[:n] - jv[n:]).pow(2).reshape(n, -1).sum(dim=1)
    return per.reshape(corruptions, b).mean(dim=0)
