"""ONNX layers with weights or windows (Gemm, MatMul, Conv, ConvTranspose, BatchNormalization,
pooling) as torch library layers, which every bound engine knows best.

1-D convolutions and pools become 2-D ones over a height of 1 (the same arithmetic, and a layer
the engines already bound); asymmetric padding becomes an explicit Pad (or a crop, for
ConvTranspose) beside a layer with symmetric padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .onnx_convert import Const, Dyn, GraphConverter, OnnxNode, Value, normalise_axis
from .onnx_layers import Elementwise, Pad, Reduce
from .onnx_ops_math import elementwise
from .onnx_ops_shape import permute, take


def _weights(ctx: GraphConverter, t: Tensor) -> Tensor:
    """A weight in the network's float type (float64 for networks with double inputs)."""
    return t.detach().to(ctx.real).contiguous()


def _linear(ctx: GraphConverter, weight: Tensor, bias: Tensor | None) -> nn.Linear:
    """``nn.Linear`` with ``weight`` of shape (out, in)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    layer.weight = nn.Parameter(_weights(ctx, weight), requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(_weights(ctx, bias), requires_grad=False)
    return layer.eval()


# --- matrix products -------------------------------------------------------------------------
def matmul_values(ctx: GraphConverter, node: OnnxNode, a: Value, b: Value) -> Value:
    """numpy ``matmul`` of two values: an `nn.Linear` when the right operand is a constant
    matrix, else one ``torch.matmul`` step with the ranks aligned as numpy aligns them."""
    if isinstance(a, Const) and isinstance(b, Const):
        return ctx.fold(node, torch.matmul, a.tensor, b.tensor)
    if min(len(a.shape), len(b.shape)) == 0:
        raise node.error("multiplies a scalar, which MatMul does not allow")
    k = a.shape[-1]
    kb = b.shape[0] if len(b.shape) == 1 else b.shape[-2]
    if k != kb:
        raise node.error(f"multiplies shapes {list(a.shape)} and {list(b.shape)}")
    if isinstance(a, Dyn) and isinstance(b, Const) and b.tensor.dim() <= 2:
        w = b.tensor if b.tensor.dim() == 2 else b.tensor.reshape(k, 1)
        y = ctx.emit(node, _linear(ctx, w.T, None), [a], a.batch_first)
        return y if b.tensor.dim() == 2 else ctx.reshape(node, y, a.shape[:-1])
    if isinstance(a, Const) and a.tensor.dim() == 2 and len(b.shape) == 1:  # W @ x, x a vector
        return ctx.emit(node, _linear(ctx, a.tensor, None), [b], b.batch_first)
    if (
        isinstance(a, Const)
        and a.tensor.dim() == 2
        and len(b.shape) >= 2
        and b.shape[-1] == 1
        and all(d == 1 for d in b.shape[:-2])
    ):  # W @ x for a column x ([1, 784, 1] inputs): a Linear between two reshapes
        flat = ctx.reshape(node, b, (k,))
        y = ctx.emit(node, _linear(ctx, a.tensor, None), [flat], False)
        return ctx.reshape(node, y, (*b.shape[:-2], a.shape[0], 1))
    a_shape = (1, *a.shape) if len(a.shape) == 1 else a.shape
    b_shape = (*b.shape, 1) if len(b.shape) == 1 else b.shape
    try:
        batch = tuple(torch.broadcast_shapes(a_shape[:-2], b_shape[:-2]))
    except RuntimeError:
        raise node.error(f"multiplies shapes {list(a.shape)} and {list(b.shape)}") from None
    rank = len(batch) + 2
    real = next(v.dtype for v in (a, b) if isinstance(v, Dyn))
    inputs: list[Dyn] = []
    slots: list[int | Tensor] = []
    for v, shape in ((a, a_shape), (b, b_shape)):
        if isinstance(v, Const):
            c = v.tensor.reshape(shape)
            c = c.to(real) if c.is_floating_point() else c
            slots.append(c.reshape((1,) * (rank - c.dim()) + tuple(c.shape)))
        else:
            x = ctx.reshape(node, v, shape) if shape != v.shape else v
            slots.append(len(inputs))
            inputs.append(ctx.pad_rank(node, x, rank))
    y = ctx.emit(node, Elementwise(torch.matmul, slots), inputs, False)
    out = (
        batch
        + ((a_shape[-2],) if len(a.shape) > 1 else ())
        + ((b_shape[-1],) if len(b.shape) > 1 else ())
    )
    return ctx.reshape(node, y, out) if out != y.shape else y


def matmul(ctx: GraphConverter, node: OnnxNode) -> Value:
    return matmul_values(ctx, node, ctx.need(node, 0), ctx.need(node, 1))


def gemm(ctx: GraphConverter, node: OnnxNode) -> Value:
    a, b, c = ctx.need(node, 0), ctx.need(node, 1), ctx.get(node, 2)
    alpha, beta = float(node.attr("alpha", 1.0)), float(node.attr("beta", 1.0))
    if len(a.shape) != 2 or len(b.shape) != 2:
        raise node.error(f"needs matrices, got shapes {list(a.shape)} and {list(b.shape)}")
    if node.attr("transA", 0):
        a = Const(a.tensor.T) if isinstance(a, Const) else permute(ctx, node, a, (1, 0))
    trans_b = bool(node.attr("transB", 0))
    if isinstance(a, Dyn) and isinstance(b, Const):
        w = (b.tensor if trans_b else b.tensor.T) * alpha  # (out, in)
        width = w.shape[0]
        if w.shape[1] != a.shape[-1]:
            raise node.error(f"multiplies shapes {list(a.shape)} and {list(b.shape)}")
        bias = None
        if (
            isinstance(c, Const)
            and c.tensor.numel() in (1, width)
            and (c.tensor.dim() == 0 or c.tensor.shape[-1] in (1, width))
            and (c.tensor.dim() < 2 or c.tensor.shape[0] == 1)
        ):
            bias, c = torch.broadcast_to(c.tensor.reshape(-1) * beta, (width,)), None
        y: Value = ctx.emit(node, _linear(ctx, w, bias), [a], a.batch_first)
    else:
        if trans_b:
            b = Const(b.tensor.T) if isinstance(b, Const) else permute(ctx, node, b, (1, 0))
        y = ctx.settle(matmul_values(ctx, node, a, b))
        if alpha != 1.0:
            y = ctx.settle(elementwise(ctx, node, torch.mul, [y, Const(torch.tensor(alpha))]))
    if c is None:
        return y
    if isinstance(c, Const):
        c = Const(c.tensor * beta)
    elif beta != 1.0:
        c = ctx.settle(elementwise(ctx, node, torch.mul, [c, Const(torch.tensor(beta))]))
    return elementwise(ctx, node, torch.add, [y, c])


# --- windows: pads and sizes ------------------------------------------------------------------
def window_pads(
    node: OnnxNode,
    sizes: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> list[tuple[int, int]]:
    """(before, after) padding per spatial axis from ``pads`` or ``auto_pad``."""
    k = len(sizes)
    auto = node.attr("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = node.ints("pads", [0] * 2 * k)
        if len(pads) != 2 * k or any(p < 0 for p in pads):
            raise node.error(f"has pads {pads} for {k} spatial axes")
        return list(zip(pads[:k], pads[k:], strict=True))
    if auto == "VALID":
        return [(0, 0)] * k
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise node.error(f"has auto_pad {auto!r}")
    out = []
    for n, kk, s, d in zip(sizes, kernel, strides, dilations, strict=True):
        total = max(0, (math.ceil(n / s) - 1) * s + (kk - 1) * d + 1 - n)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out


def _spatial(node: OnnxNode, name: str, k: int, default: int) -> list[int]:
    values = node.ints(name, [default] * k)
    if len(values) != k or any(v < 1 for v in values):
        raise node.error(f"has {name} {values} for {k} spatial axes")
    return values


def _explicit_pad(ctx, node, x: Dyn, pads, value: float) -> Dyn:
    spec: list[int] = []
    for before, after in reversed(pads):
        spec += [before, after]
    return ctx.emit(node, Pad(spec, "constant", value), [x], True)


def _as_2d(ctx, node, x: Dyn) -> Dyn:
    """(1, C, L) → (1, C, 1, L): a 1-D window layer runs as a 2-D one of height 1."""
    return ctx.reshape(node, x, (*x.shape[:2], 1, x.shape[2]))


def _from_2d(ctx, node, y: Dyn) -> Dyn:
    return ctx.reshape(node, y, (*y.shape[:2], y.shape[3]))


def _spatial_input(ctx: GraphConverter, node: OnnxNode, k: int) -> Dyn:
    x = ctx.data(ctx.need(node, 0))
    if len(x.shape) != k + 2:
        raise node.error(f"needs a rank-{k + 2} input, got shape {list(x.shape)}")
    return ctx.batch_first(node, x, "; threatlang converts one example per network input")


# --- convolutions -----------------------------------------------------------------------------
def conv(ctx: GraphConverter, node: OnnxNode) -> Value:
    w = ctx.const(node, 1, "weights")
    b = ctx.const(node, 2, "bias")
    k = w.dim() - 2
    if k not in (1, 2, 3):
        raise node.error(f"has a {k}-D kernel; threatlang converts 1-D, 2-D and 3-D Conv")
    x = _spatial_input(ctx, node, k)
    group = int(node.attr("group", 1))
    if x.shape[1] != w.shape[1] * group:
        raise node.error(f"has {x.shape[1]} input channels for weights of shape {list(w.shape)}")
    strides, dilations = _spatial(node, "strides", k, 1), _spatial(node, "dilations", k, 1)
    pads = window_pads(node, x.shape[2:], w.shape[2:], strides, dilations)
    if any(a != b_ for a, b_ in pads):
        x = _explicit_pad(ctx, node, x, pads, 0.0)
        pads = [(0, 0)] * k
    if k == 1:
        x, w = _as_2d(ctx, node, x), w.unsqueeze(2)
        strides, dilations, pads = [1, *strides], [1, *dilations], [(0, 0), *pads]
    cls = nn.Conv3d if k == 3 else nn.Conv2d
    layer = cls(
        w.shape[1] * group,
        w.shape[0],
        tuple(w.shape[2:]),
        stride=tuple(strides),
        padding=tuple(p for p, _ in pads),
        dilation=tuple(dilations),
        groups=group,
        bias=b is not None,
    )
    layer.weight = nn.Parameter(_weights(ctx, w), requires_grad=False)
    if b is not None:
        layer.bias = nn.Parameter(_weights(ctx, b.reshape(-1)), requires_grad=False)
    y = ctx.emit(node, layer.eval(), [x], True)
    return _from_2d(ctx, node, y) if k == 1 else y


def conv_transpose(ctx: GraphConverter, node: OnnxNode) -> Value:
    w = ctx.const(node, 1, "weights")
    b = ctx.const(node, 2, "bias")
    k = w.dim() - 2
    if k not in (1, 2, 3):
        raise node.error(f"has a {k}-D kernel; threatlang converts 1-D, 2-D and 3-D ConvTranspose")
    x = _spatial_input(ctx, node, k)
    group = int(node.attr("group", 1))
    if x.shape[1] != w.shape[0]:
        raise node.error(f"has {x.shape[1]} input channels for weights of shape {list(w.shape)}")
    strides, dilations = _spatial(node, "strides", k, 1), _spatial(node, "dilations", k, 1)
    extra = node.ints("output_padding", [0] * k)
    sizes = x.shape[2:]
    full = [
        (n - 1) * s + (kk - 1) * d + 1
        for n, s, kk, d in zip(sizes, strides, w.shape[2:], dilations, strict=True)
    ]
    target = node.ints("output_shape")
    auto = node.attr("auto_pad", "NOTSET")
    if target is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        target = [n * s for n, s in zip(sizes, strides, strict=True)]
    if target is not None:
        target = target[-k:]
        pads = []
        for f, e, t in zip(full, extra, target, strict=True):
            total = f + e - t
            if total < 0:
                raise node.error(f"asks for output shape {target}, larger than it computes")
            small, big = total // 2, total - total // 2
            pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
    elif auto == "VALID":
        pads = [(0, 0)] * k
    else:
        pads = window_pads(node, sizes, w.shape[2:], strides, dilations)
    if any(e >= max(s, d) for e, s, d in zip(extra, strides, dilations, strict=True)):
        raise node.error(f"has output_padding {extra}, not below its strides or dilations")
    common = [min(p) for p in pads]
    if k == 1:
        x, w = _as_2d(ctx, node, x), w.unsqueeze(2)
    ones = [1] if k == 1 else []
    cls = nn.ConvTranspose3d if k == 3 else nn.ConvTranspose2d
    layer = cls(
        w.shape[0],
        w.shape[1] * group,
        tuple(w.shape[2:]),
        stride=tuple(ones + strides),
        padding=tuple([0] * len(ones) + common),
        output_padding=tuple([0] * len(ones) + extra),
        groups=group,
        bias=b is not None,
        dilation=tuple(ones + dilations),
    )
    layer.weight = nn.Parameter(_weights(ctx, w), requires_grad=False)
    if b is not None:
        layer.bias = nn.Parameter(_weights(ctx, b.reshape(-1)), requires_grad=False)
    y = ctx.emit(node, layer.eval(), [x], True)
    if k == 1:
        y = _from_2d(ctx, node, y)
    crops = {}
    for i, ((before, after), c, f, e) in enumerate(zip(pads, common, full, extra, strict=True)):
        if before != after:
            length = f + e - before - after
            crops[2 + i] = range(before - c, before - c + length)
    return take(ctx, node, y, crops) if crops else y


# --- normalisation ----------------------------------------------------------------------------
def batch_norm(ctx: GraphConverter, node: OnnxNode) -> Value:
    if node.attr("training_mode", 0):
        raise node.error("runs in training mode, which normalises by the batch's own statistics")
    if node.opset < 9 and node.attr("spatial", 1) == 0:
        raise node.error("normalises per activation (spatial=0), which threatlang does not convert")
    scale, bias, mean, var = (ctx.const(node, i, "statistics") for i in range(1, 5))
    if any(t is None for t in (scale, bias, mean, var)):
        raise node.error("lacks its scale, bias, mean or variance")
    eps = float(node.attr("epsilon", 1e-5))
    x = ctx.data(ctx.need(node, 0))
    channels = scale.numel()
    if len(x.shape) < 2 or x.shape[1] != channels:
        raise node.error(f"normalises {channels} channels of a tensor of shape {list(x.shape)}")
    kinds = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}
    if x.shape[0] == 1 and len(x.shape) in kinds:
        bn = kinds[len(x.shape)](channels, eps=eps).to(ctx.real)
        with torch.no_grad():
            bn.weight.copy_(_weights(ctx, scale.reshape(-1)))
            bn.bias.copy_(_weights(ctx, bias.reshape(-1)))
            bn.running_mean.copy_(_weights(ctx, mean.reshape(-1)))
            bn.running_var.copy_(_weights(ctx, var.reshape(-1)))
        bn.requires_grad_(False)
        return ctx.emit(node, bn.eval(), [ctx.batch_first(node, x)], True)
    a = scale.double() / torch.sqrt(var.double() + eps)
    shift = bias.double() - mean.double() * a
    per_channel = (channels, *([1] * (len(x.shape) - 2)))
    y = ctx.settle(elementwise(ctx, node, torch.mul, [x, Const(a.reshape(per_channel))]))
    return elementwise(ctx, node, torch.add, [y, Const(shift.reshape(per_channel))])


def layer_norm(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = ctx.data(ctx.need(node, 0))
    rank = len(x.shape)
    axis = normalise_axis(node, int(node.attr("axis", -1)), rank)
    shape = x.shape[axis:]
    scale, bias = ctx.const(node, 1, "scale"), ctx.const(node, 2, "bias")
    try:
        weight = torch.broadcast_to(scale, shape)
        shift = torch.zeros(shape) if bias is None else torch.broadcast_to(bias, shape)
    except (RuntimeError, TypeError):
        raise node.error(f"has a scale or bias that does not fit the shape {list(shape)}") from None
    if x.batch_first and axis == 0:
        x = ctx.prepended(node, x)
    layer = nn.LayerNorm(shape, eps=float(node.attr("epsilon", 1e-5)))
    layer.weight = nn.Parameter(_weights(ctx, weight.contiguous()), requires_grad=False)
    layer.bias = nn.Parameter(_weights(ctx, shift.contiguous()), requires_grad=False)
    return ctx.emit(node, layer.eval(), [x], x.batch_first)


# --- pooling ----------------------------------------------------------------------------------
def pool(ctx: GraphConverter, node: OnnxNode) -> Value:
    is_max = node.op == "MaxPool"
    kernel = node.ints("kernel_shape")
    if not kernel:
        raise node.error("has no kernel_shape")
    k = len(kernel)
    if k not in (1, 2, 3):
        raise node.error(f"pools over {k} axes; threatlang converts 1 to 3")
    x = _spatial_input(ctx, node, k)
    strides = _spatial(node, "strides", k, 1)
    dilations = _spatial(node, "dilations", k, 1)
    if not is_max and any(d != 1 for d in dilations):
        raise node.error("is a dilated AveragePool, which threatlang does not convert")
    pads = window_pads(node, x.shape[2:], kernel, strides, dilations)
    ceil = bool(node.attr("ceil_mode", 0))
    include = bool(node.attr("count_include_pad", 0))
    span = [(kk - 1) * d + 1 for kk, d in zip(kernel, dilations, strict=True)]
    fits = all(
        a == b and 2 * a <= (s if is_max else kk)
        for (a, b), s, kk in zip(pads, span, kernel, strict=True)
    )
    if not fits and any(p != (0, 0) for p in pads):
        if not is_max and not include:
            raise node.error(
                "averages with asymmetric or oversized padding that it does not count "
                "(count_include_pad=0), which threatlang does not convert"
            )
        x = _explicit_pad(ctx, node, x, pads, -math.inf if is_max else 0.0)
        pads = [(0, 0)] * k
    if k == 1:
        x = _as_2d(ctx, node, x)
        kernel, strides, dilations = [1, *kernel], [1, *strides], [1, *dilations]
        pads = [(0, 0), *pads]
    padding = tuple(p for p, _ in pads)
    if is_max:
        cls = nn.MaxPool3d if len(kernel) == 3 else nn.MaxPool2d
        layer = cls(tuple(kernel), tuple(strides), padding, tuple(dilations), ceil_mode=ceil)
    else:
        cls = nn.AvgPool3d if len(kernel) == 3 else nn.AvgPool2d
        layer = cls(
            tuple(kernel), tuple(strides), padding, ceil_mode=ceil, count_include_pad=include
        )
    y = ctx.emit(node, layer, [x], True)
    return _from_2d(ctx, node, y) if k == 1 else y


def global_pool(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = ctx.data(ctx.need(node, 0))
    if len(x.shape) < 3:
        raise node.error(f"pools a tensor of shape {list(x.shape)}, which has no spatial axes")
    is_max = node.op == "GlobalMaxPool"
    x = ctx.batch_first(node, x, "; threatlang converts one example per network input")
    if len(x.shape) == 4:
        kernel = tuple(x.shape[2:])
        layer: nn.Module = nn.MaxPool2d(kernel) if is_max else nn.AvgPool2d(kernel)
        return ctx.emit(node, layer, [x], True)
    fn = torch.amax if is_max else torch.mean
    dims = tuple(range(2, len(x.shape)))
    return ctx.emit(node, Reduce(fn, dims, True), [x], True)


CONVERTERS = {
    "MatMul": matmul,
    "Gemm": gemm,
    "Conv": conv,
    "ConvTranspose": conv_transpose,
    "BatchNormalization": batch_norm,
    "LayerNormalization": layer_norm,
    "MaxPool": pool,
    "AveragePool": pool,
    "GlobalAveragePool": global_pool,
    "GlobalMaxPool": global_pool,
}
