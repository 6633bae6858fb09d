"""ONNX elementwise operators, activations, reductions, casts and constants as torch steps.

Each converter takes the conversion state and the node and returns the node's output values;
see `onnx_convert` for the batch layouts and constant folding these rely on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .onnx_convert import Const, Dyn, GraphConverter, OnnxNode, Value, normalise_axis
from .onnx_layers import Cast, Clamp, Elementwise, Power, Reduce, Unary, int_div, prelu


# --- elementwise with numpy broadcasting -----------------------------------------------------
def elementwise(
    ctx: GraphConverter, node: OnnxNode, fn: Callable[..., Tensor], operands: Sequence[Value]
) -> Value:
    """``fn`` over operands broadcast as numpy does: folded when all are constants; otherwise one
    step with the constants baked in, in the batch-first layout when every computed operand
    and every constant keeps ONNX axis 0 of size 1, else with a batch axis prepended."""
    try:
        out = tuple(torch.broadcast_shapes(*(v.shape for v in operands)))
    except RuntimeError:
        shapes = ", ".join(str(list(v.shape)) for v in operands)
        raise node.error(f"cannot broadcast its operands of shapes {shapes}") from None
    dyns = [v for v in operands if isinstance(v, Dyn)]
    if not dyns:
        return ctx.fold(node, fn, *(v.tensor for v in operands))
    rank = len(out)
    real = next((d.dtype for d in dyns if d.dtype.is_floating_point), None)

    def bake(t: Tensor) -> Tensor:
        if real is not None and t.is_floating_point():
            t = t.to(real)
        return t.reshape((1,) * (rank - t.dim()) + tuple(t.shape))

    consts = {id(v): bake(v.tensor) for v in operands if isinstance(v, Const)}
    batch_first = (
        rank >= 2
        and out[0] == 1
        and all(d.batch_first and len(d.shape) == rank for d in dyns)
        and all(c.shape[0] == 1 for c in consts.values())
    )
    inputs: list[Dyn] = []
    slots: list[int | Tensor] = []
    for v in operands:
        if isinstance(v, Const):
            c = consts[id(v)]
            slots.append(c[0] if batch_first else c)
        else:
            slots.append(len(inputs))
            inputs.append(v if batch_first else ctx.pad_rank(node, v, rank))
    return ctx.emit(node, Elementwise(fn, slots), inputs, batch_first)


def _binary(fn: Callable[..., Tensor]):
    def convert(ctx: GraphConverter, node: OnnxNode) -> Value:
        return elementwise(ctx, node, fn, [ctx.need(node, 0), ctx.need(node, 1)])

    return convert


def _variadic(fn: Callable[..., Tensor]):
    def convert(ctx: GraphConverter, node: OnnxNode) -> Value:
        values = [ctx.need(node, i) for i in range(len(node.inputs))]
        result = values[0]
        for v in values[1:]:
            result = ctx.settle(elementwise(ctx, node, fn, [result, v]))
        return result

    return convert


def _fold_linear_bias(ctx: GraphConverter, node: OnnxNode, a: Value, b: Value) -> Value | None:
    """``Linear(x) + c`` where ``c`` is one bias per output and nothing else reads the product:
    the bias joins the layer (one `nn.Linear`, as bound engines like it)."""
    if not (isinstance(a, Dyn) and isinstance(b, Const)) or a.ref <= 0:
        return None
    step = ctx.steps[a.ref - 1]
    layer = step.module
    if not isinstance(layer, nn.Linear) or layer.bias is not None or a.folded is not None:
        return None
    if ctx.readers[node.inputs[0] if ctx.values.get(node.inputs[0]) is a else node.inputs[1]] != 1:
        return None
    c = b.tensor
    width = layer.out_features
    if not c.is_floating_point() or c.numel() != width or c.dim() > len(a.shape):
        return None
    if c.dim() and c.shape[-1] != width:
        return None
    layer.bias = nn.Parameter(c.reshape(width).to(layer.weight.dtype), requires_grad=False)
    return a


def add(ctx: GraphConverter, node: OnnxNode) -> Value:
    a, b = ctx.need(node, 0), ctx.need(node, 1)
    fused = _fold_linear_bias(ctx, node, a, b) or _fold_linear_bias(ctx, node, b, a)
    return fused if fused is not None else elementwise(ctx, node, torch.add, [a, b])


def div(ctx: GraphConverter, node: OnnxNode) -> Value:
    a, b = ctx.need(node, 0), ctx.need(node, 1)
    integer = not (a.dtype if isinstance(a, Dyn) else a.tensor.dtype).is_floating_point
    if isinstance(a, Dyn) and isinstance(b, Const) and not integer and bool((b.tensor == 0).any()):
        raise node.error("is a Div by a constant with zeros, which gives infinities")
    return elementwise(ctx, node, int_div if integer else torch.div, [a, b])


def power(ctx: GraphConverter, node: OnnxNode) -> Value:
    """A scalar constant exponent stays a Python number (ATen ``pow.Tensor_Scalar``, which
    bound engines relax as a power function, not as a product of two tensors)."""
    x, e = ctx.need(node, 0), ctx.need(node, 1)
    if isinstance(x, Dyn) and isinstance(e, Const) and e.tensor.numel() == 1:
        if x.dtype.is_floating_point and len(e.shape) <= len(x.shape):
            return ctx.emit(node, Power(e.tensor.reshape(()).item()), [x], x.batch_first)
    return elementwise(ctx, node, torch.pow, [x, e])


def mean(ctx: GraphConverter, node: OnnxNode) -> Value:
    total = _variadic(torch.add)(ctx, node)
    n = torch.tensor(float(len(node.inputs)))
    return elementwise(ctx, node, torch.div, [ctx.settle(total), Const(n)])


def where(ctx: GraphConverter, node: OnnxNode) -> Value:
    return elementwise(ctx, node, torch.where, [ctx.need(node, i) for i in range(3)])


def prelu_op(ctx: GraphConverter, node: OnnxNode) -> Value:
    return elementwise(ctx, node, prelu, [ctx.need(node, 0), ctx.need(node, 1)])


# --- one input -------------------------------------------------------------------------------
def apply_unary(ctx: GraphConverter, node: OnnxNode, module: nn.Module, x: Value) -> Value:
    if isinstance(x, Const):
        return ctx.fold(node, module, x.tensor)
    return ctx.emit(node, module, [x], x.batch_first)


def _unary(make: Callable[[OnnxNode], nn.Module]):
    def convert(ctx: GraphConverter, node: OnnxNode) -> Value:
        return apply_unary(ctx, node, make(node), ctx.need(node, 0))

    return convert


def _torch_fn(fn: Callable[[Tensor], Tensor]):
    return _unary(lambda node: Unary(fn))


def leaky_relu(node: OnnxNode) -> nn.Module:
    return nn.LeakyReLU(float(node.attr("alpha", 0.01)))


def elu(node: OnnxNode) -> nn.Module:
    return nn.ELU(float(node.attr("alpha", 1.0)))


def gelu(node: OnnxNode) -> nn.Module:
    return nn.GELU(approximate=node.attr("approximate", "none"))


def selu(ctx: GraphConverter, node: OnnxNode) -> Value:
    """``gamma * (x if x > 0 else alpha * (exp(x) - 1))``: an ELU scaled."""
    alpha = float(node.attr("alpha", 1.67326319217681884765625))
    gamma = float(node.attr("gamma", 1.05070102214813232421875))
    y = apply_unary(ctx, node, nn.ELU(alpha), ctx.need(node, 0))
    return elementwise(ctx, node, torch.mul, [ctx.settle(y), Const(torch.tensor(gamma))])


def thresholded_relu(ctx: GraphConverter, node: OnnxNode) -> Value:
    alpha = float(node.attr("alpha", 1.0))
    return apply_unary(ctx, node, nn.Threshold(alpha, 0.0), ctx.need(node, 0))


def einsum(ctx: GraphConverter, node: OnnxNode) -> Value:
    """``torch.einsum`` with a batch letter added to every computed operand and the output."""
    equation = str(node.attr("equation", "")).replace(" ", "")
    values = [ctx.need(node, i) for i in range(len(node.inputs))]
    if "." in equation:
        raise node.error("uses an ellipsis, which threatlang does not convert")
    lhs, _, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(values) or any(
        len(t) != len(v.shape) for t, v in zip(terms, values, strict=False)
    ):
        raise node.error(
            f"has equation {equation!r} for operands of shapes {[list(v.shape) for v in values]}"
        )
    if "->" not in equation:  # implicit output: the letters seen once, in order
        rhs = "".join(sorted(c for c in set(lhs) if c.isalpha() and lhs.count(c) == 1))
    if not any(isinstance(v, Dyn) for v in values):
        return ctx.fold(
            node, lambda *ts: torch.einsum(f"{lhs}->{rhs}", *ts), *(v.tensor for v in values)
        )
    batch = next(c for c in "ZYXWVUTSRQPONMLKJIHGFEDCBA" if c not in equation)
    slots: list[int | torch.Tensor] = []
    inputs: list[Dyn] = []
    real = next(v.dtype for v in values if isinstance(v, Dyn))
    for k, v in enumerate(values):
        if isinstance(v, Const):
            t = v.tensor
            slots.append(t.to(real) if t.is_floating_point() else t)
        else:
            terms[k] = batch + terms[k]
            slots.append(len(inputs))
            inputs.append(ctx.prepended(node, v))
    fn = functools.partial(torch.einsum, f"{','.join(terms)}->{batch}{rhs}")
    return ctx.emit(node, Elementwise(fn, slots), inputs, False)


def hard_sigmoid(ctx: GraphConverter, node: OnnxNode) -> Value:
    alpha, beta = float(node.attr("alpha", 0.2)), float(node.attr("beta", 0.5))
    x = ctx.need(node, 0)
    y = elementwise(ctx, node, torch.mul, [x, Const(torch.tensor(alpha))])
    y = elementwise(ctx, node, torch.add, [ctx.settle(y), Const(torch.tensor(beta))])
    return apply_unary(ctx, node, Clamp(0.0, 1.0), ctx.settle(y))


def clip(ctx: GraphConverter, node: OnnxNode) -> Value:
    if node.opset < 11:
        low, high = node.attr("min"), node.attr("max")
    else:
        lo, hi = ctx.const(node, 1, "minimum"), ctx.const(node, 2, "maximum")
        low = None if lo is None else lo.reshape(-1)[0].item()
        high = None if hi is None else hi.reshape(-1)[0].item()
    return apply_unary(ctx, node, Clamp(low, high), ctx.need(node, 0))


def _softmax(kind: type[nn.Module]):
    def convert(ctx: GraphConverter, node: OnnxNode) -> Value:
        x = ctx.data(ctx.need(node, 0))
        rank = len(x.shape)
        axis = normalise_axis(node, int(node.attr("axis", 1 if node.opset < 13 else -1)), rank)
        if node.opset < 13 and axis != rank - 1:  # coerced to 2-D at `axis`
            shape = x.shape
            flat = (math.prod(shape[:axis]), math.prod(shape[axis:]))
            y = _softmax_at(ctx, node, kind, ctx.reshape(node, x, flat), 1)
            return ctx.reshape(node, y, shape)
        return _softmax_at(ctx, node, kind, x, axis)

    return convert


def _softmax_at(ctx, node, kind, x: Dyn, axis: int) -> Dyn:
    if x.batch_first and axis == 0:
        x = ctx.prepended(node, x)
    return ctx.emit(node, kind(dim=x.axis(axis)), [x], x.batch_first)


# --- reductions -------------------------------------------------------------------------------
_REDUCTIONS: dict[str, Callable[..., Tensor]] = {
    "ReduceSum": torch.sum,
    "ReduceMean": torch.mean,
    "ReduceMax": torch.amax,
    "ReduceMin": torch.amin,
}


def reduce(ctx: GraphConverter, node: OnnxNode) -> Value:
    fn = _REDUCTIONS[node.op]
    x = ctx.data(ctx.need(node, 0))
    rank = len(x.shape)
    axes_from_input = node.opset >= (13 if node.op == "ReduceSum" else 18)
    axes = ctx.ints(node, 1, "axes") if axes_from_input else node.ints("axes")
    keep = bool(node.attr("keepdims", 1))
    if not axes:
        if node.attr("noop_with_empty_axes", 0) or rank == 0:
            return x
        axes = list(range(rank))
    axes = sorted({normalise_axis(node, a, rank) for a in axes})
    if x.batch_first and 0 in axes:
        x = ctx.prepended(node, x)
    return ctx.emit(node, Reduce(fn, [x.axis(a) for a in axes], keep), [x], x.batch_first)


def arg_extreme(ctx: GraphConverter, node: OnnxNode) -> Value:
    """ArgMax/ArgMin on constants (an index computed from the input has no useful bound)."""
    t = ctx.const(node, 0, "data")
    axis = normalise_axis(node, int(node.attr("axis", 0)), t.dim())
    keep = bool(node.attr("keepdims", 1))
    if node.attr("select_last_index", 0):
        t = t.flip(axis)
    fn = torch.argmax if node.op == "ArgMax" else torch.argmin
    idx = ctx.fold(node, functools.partial(fn, dim=axis, keepdim=keep), t).tensor
    if node.attr("select_last_index", 0):
        idx = t.shape[axis] - 1 - idx
    return Const(idx)


# --- types and pass-throughs ------------------------------------------------------------------
def onnx_dtype(node: OnnxNode, code: int) -> torch.dtype:
    from onnx import TensorProto

    table = {
        TensorProto.FLOAT: torch.float32,
        TensorProto.DOUBLE: torch.float64,
        TensorProto.FLOAT16: torch.float16,
        TensorProto.INT8: torch.int8,
        TensorProto.INT16: torch.int16,
        TensorProto.INT32: torch.int32,
        TensorProto.INT64: torch.int64,
        TensorProto.UINT8: torch.uint8,
        TensorProto.BOOL: torch.bool,
    }
    if code not in table:
        raise node.error(f"uses element type {code}, which threatlang does not convert")
    return table[code]


def _cast_to(ctx: GraphConverter, node: OnnxNode, x: Value, dtype: torch.dtype) -> Value:
    if isinstance(x, Const):
        return Const(x.tensor.to(dtype))
    if dtype.is_floating_point:
        if dtype.itemsize < 4:
            raise node.error(
                f"rounds computed values to {dtype}, which threatlang does not model; export "
                "the network in float32"
            )
        if x.dtype.is_floating_point:
            return x  # computed values stay in the network's float type
        dtype = ctx.real
    return ctx.emit(node, Cast(dtype), [x], x.batch_first)


def cast(ctx: GraphConverter, node: OnnxNode) -> Value:
    return _cast_to(ctx, node, ctx.need(node, 0), onnx_dtype(node, int(node.attr("to"))))


def cast_like(ctx: GraphConverter, node: OnnxNode) -> Value:
    like = ctx.need(node, 1)
    dtype = like.dtype if isinstance(like, Dyn) else like.tensor.dtype
    return _cast_to(ctx, node, ctx.need(node, 0), dtype)


def identity(ctx: GraphConverter, node: OnnxNode) -> Value:
    return ctx.need(node, 0)


def dropout(ctx: GraphConverter, node: OnnxNode) -> Sequence[Value]:
    """Inference-mode Dropout is the identity; a Dropout that stays on is random: refused."""
    training = node.opset < 7 and node.attr("is_test", 0) == 0
    if node.opset >= 12:
        mode = ctx.get(node, 2)
        if isinstance(mode, Dyn):
            raise node.error("takes its training mode from the network's input")
        training = mode is not None and bool(mode.tensor.reshape(-1)[0])
    if training:
        raise node.error("runs in training mode, so its output is random")
    x = ctx.need(node, 0)
    if len(node.outputs) < 2 or not node.outputs[1]:
        return [x]
    ctx.check_size(node, x.shape)
    return [x, Const(torch.ones(x.shape, dtype=torch.bool))]  # the mask: nothing dropped


# --- constants --------------------------------------------------------------------------------
def constant(ctx: GraphConverter, node: OnnxNode) -> Value:
    from .onnx_tensors import tensor_from_proto

    if node.has("value"):
        return Const(tensor_from_proto(node, node.attr("value")))
    for name, dtype in (
        ("value_float", torch.float32),
        ("value_floats", torch.float32),
        ("value_int", torch.int64),
        ("value_ints", torch.int64),
    ):
        if node.has(name):
            return Const(torch.tensor(node.attr(name), dtype=dtype))
    raise node.error("holds a sparse or string constant, which threatlang does not convert")


def shape(ctx: GraphConverter, node: OnnxNode) -> Value:
    dims = ctx.need(node, 0).shape
    start, end = int(node.attr("start", 0)), node.attr("end")
    return Const(torch.tensor(dims[start : None if end is None else int(end)], dtype=torch.int64))


def size(ctx: GraphConverter, node: OnnxNode) -> Value:
    return Const(torch.tensor(math.prod(ctx.need(node, 0).shape), dtype=torch.int64))


def constant_of_shape(ctx: GraphConverter, node: OnnxNode) -> Value:
    from .onnx_tensors import tensor_from_proto

    dims = ctx.ints(node, 0, "shape") or []
    ctx.check_size(node, dims)
    fill = node.attr("value")
    value = torch.zeros(1) if fill is None else tensor_from_proto(node, fill).reshape(-1)
    return Const(torch.full(dims, value[0].item(), dtype=value.dtype))


def range_op(ctx: GraphConverter, node: OnnxNode) -> Value:
    start, limit, delta = (ctx.const(node, i, "range bound") for i in range(3))
    if start is None or limit is None or delta is None or float(delta) == 0:
        raise node.error("needs a start, a limit and a non-zero step")
    n = max(math.ceil((float(limit) - float(start)) / float(delta)), 0)
    ctx.check_size(node, [n])
    return Const(start + delta * torch.arange(n, dtype=start.dtype))


CONVERTERS = {
    "Add": add,
    "Sub": _binary(torch.sub),
    "Mul": _binary(torch.mul),
    "Div": div,
    "Pow": power,
    "Sum": _variadic(torch.add),
    "Mean": mean,
    "Min": _variadic(torch.minimum),
    "Max": _variadic(torch.maximum),
    "Equal": _binary(torch.eq),
    "Greater": _binary(torch.gt),
    "Less": _binary(torch.lt),
    "GreaterOrEqual": _binary(torch.ge),
    "LessOrEqual": _binary(torch.le),
    "And": _binary(torch.logical_and),
    "Or": _binary(torch.logical_or),
    "Xor": _binary(torch.logical_xor),
    "Where": where,
    "PRelu": prelu_op,
    "Relu": _unary(lambda node: nn.ReLU()),
    "Sigmoid": _unary(lambda node: nn.Sigmoid()),
    "Tanh": _unary(lambda node: nn.Tanh()),
    "Softplus": _unary(lambda node: nn.Softplus()),
    "LeakyRelu": _unary(leaky_relu),
    "Softsign": _unary(lambda node: nn.Softsign()),
    "HardSwish": _unary(lambda node: nn.Hardswish()),
    "Mish": _unary(lambda node: nn.Mish()),
    "Celu": _unary(lambda node: nn.CELU(float(node.attr("alpha", 1.0)))),
    "Selu": selu,
    "ThresholdedRelu": thresholded_relu,
    "Einsum": einsum,
    "Elu": _unary(elu),
    "Gelu": _unary(gelu),
    "HardSigmoid": hard_sigmoid,
    "Abs": _torch_fn(torch.abs),
    "Neg": _torch_fn(torch.neg),
    "Exp": _torch_fn(torch.exp),
    "Log": _torch_fn(torch.log),
    "Sqrt": _torch_fn(torch.sqrt),
    "Reciprocal": _torch_fn(torch.reciprocal),
    "Sign": _torch_fn(torch.sign),
    "Floor": _torch_fn(torch.floor),
    "Ceil": _torch_fn(torch.ceil),
    "Round": _torch_fn(torch.round),
    "Erf": _torch_fn(torch.erf),
    "Sin": _torch_fn(torch.sin),
    "Cos": _torch_fn(torch.cos),
    "Not": _torch_fn(torch.logical_not),
    "Clip": clip,
    "Softmax": _softmax(nn.Softmax),
    "LogSoftmax": _softmax(nn.LogSoftmax),
    **dict.fromkeys(_REDUCTIONS, reduce),
    "ArgMax": arg_extreme,
    "ArgMin": arg_extreme,
    "Cast": cast,
    "CastLike": cast_like,
    "Identity": identity,
    "Dropout": dropout,
    "Constant": constant,
    "Shape": shape,
    "Size": size,
    "ConstantOfShape": constant_of_shape,
    "Range": range_op,
}
