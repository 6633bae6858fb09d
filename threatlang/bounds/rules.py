"""Lowering rules: core-ATen ops to bound ops (registered in :mod:`.lower`'s op registry).

Each rule checks the arguments it relies on (the dimension it acts on is not the batch, the
operand it treats as constant is constant) and otherwise refuses with one sentence.
Parameters are read through live proxies, so a graph captured before training bounds the
trained weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .affine import (
    BoundAvgPool2d,
    BoundBatchNorm,
    BoundConstArith,
    BoundConv2d,
    BoundFlatten,
    BoundIdentity,
    BoundLinear,
    BoundReshape,
    LinearParams,
)
from .errors import UnsupportedLayer
from .lower import BatchDependent, Call, Lowered, Refused, Var, live, register_op, resolve
from .merge import BoundAdd, BoundCat
from .nonlinear import BoundMaxPool2d, BoundReLU

aten = torch.ops.aten


# --- live parameter proxies ------------------------------------------------------------------
class LiveLinear(LinearParams):
    """``F.linear`` weights read on every use (gradients reach the model's parameters)."""

    weight = live("weight")
    bias = live("bias")

    def __init__(self, weight: Callable[[], Tensor], bias: Callable[[], Tensor | None]) -> None:
        self._live = {"weight": weight, "bias": bias}


class LiveConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose weight and bias are read from the model on every use."""

    weight = live("weight")  # type: ignore[assignment]
    bias = live("bias")  # type: ignore[assignment]

    def __init__(self, weight, bias, stride, padding, dilation, groups) -> None:  # noqa: ANN001
        nn.Module.__init__(self)
        self._live = {"weight": weight, "bias": bias}
        w = weight()
        self.in_channels, self.out_channels = int(w.shape[1]) * groups, int(w.shape[0])
        self.kernel_size = tuple(int(k) for k in w.shape[2:])
        self.stride, self.padding = tuple(stride), tuple(padding)
        self.dilation, self.groups = tuple(dilation), int(groups)
        self.padding_mode, self.transposed, self.output_padding = "zeros", False, (0, 0)


class LiveBatchNorm(nn.BatchNorm2d):
    """Eval-mode batch norm over the model's live running statistics and affine parameters."""

    weight = live("weight")  # type: ignore[assignment]
    bias = live("bias")  # type: ignore[assignment]
    running_mean = live("running_mean")  # type: ignore[assignment]
    running_var = live("running_var")  # type: ignore[assignment]

    def __init__(self, weight, bias, mean, var, eps: float, rank: int) -> None:  # noqa: ANN001
        nn.Module.__init__(self)
        self._live = {"weight": weight, "bias": bias, "running_mean": mean, "running_var": var}
        self.eps, self.track_running_stats, self.rank = float(eps), True, rank
        self.training = False

    def forward(self, x: Tensor) -> Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps
        )


def _optional(call: Call, v: Any) -> Callable[[], Any]:
    return (lambda: None) if v is None else call.const(v)


def _build(call: Call, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except UnsupportedLayer as err:
        call.refuse(err.why)


# --- rules -----------------------------------------------------------------------------------
def _relu(call: Call) -> Lowered:
    return Lowered(BoundReLU(nn.ReLU()), (call.var(0),))


def _identity(call: Call) -> Lowered:
    return Lowered(BoundIdentity(nn.Identity()), (call.var(0),))


def _to_copy(call: Call) -> Lowered:
    dtype = call.kwargs.get("dtype")
    if dtype is not None and not dtype.is_floating_point:
        call.refuse(f"a cast to {dtype} is not continuous")
    return _identity(call)


def _linear(call: Call) -> Lowered:
    x = call.var(0)
    w = call.const(call.args[1])
    b = _optional(call, call.args[2] if len(call.args) > 2 else call.kwargs.get("bias"))
    return Lowered(BoundLinear(LiveLinear(w, b)), (x,))


def _addmm(call: Call) -> Lowered:
    if call.kwargs.get("beta", 1) != 1 or call.kwargs.get("alpha", 1) != 1:
        call.refuse("addmm with alpha or beta other than 1")
    bias, x, wt = call.args[:3]
    if not isinstance(x, Var):
        call.refuse("the computed tensor must be the left factor of the product")
    w, b = call.const(wt), call.const(bias)
    return Lowered(BoundLinear(LiveLinear(lambda: w().t(), b)), (x,))


def _mm(call: Call) -> Lowered:
    x, wt = call.args[:2]
    if not isinstance(x, Var):
        call.refuse("the computed tensor must be the left factor of the product")
    if isinstance(wt, Var):
        call.refuse("the product of two computed tensors is not linear")
    w = call.const(wt)
    return Lowered(BoundLinear(LiveLinear(lambda: w().t(), lambda: None)), (x,))


def _convolution(call: Call) -> Lowered:
    x = call.var(0)
    w, b = call.const(call.args[1]), _optional(call, call.args[2])
    stride, padding, dilation, transposed, output_padding, groups = (
        call.value(a) for a in call.args[3:9]
    )
    if transposed:
        from .rules_more import conv_transpose

        return conv_transpose(call, x, w, b, stride, padding, dilation, output_padding, groups)
    if len(stride) == 1:  # a 1-d convolution is a 2-d one over a height of 1
        from .shape_ops import BoundSqueeze, BoundUnsqueeze

        conv = LiveConv2d(
            lambda: w().unsqueeze(2), b, (1, *stride), (0, *padding), (1, *dilation), groups
        )
        return Lowered(
            BoundUnsqueeze(2, call.name, call.where),
            (x,),
            (_build(call, lambda: BoundConv2d(conv)), BoundSqueeze(2, call.name, call.where)),
        )
    if len(stride) != 2:
        call.refuse(f"{len(stride)}-d convolution (1-d and 2-d have bound rules)")
    conv = LiveConv2d(w, b, stride, padding, dilation, groups)
    return Lowered(_build(call, lambda: BoundConv2d(conv)), (x,))


def _batch_norm_eval(call: Call) -> tuple:
    x = call.var(0)
    w, b, mean, var = (_optional(call, a) for a in call.args[1:5])
    eps = call.value(call.args[6])
    bn = LiveBatchNorm(w, b, mean, var, eps, len(call.out_shape) + 1)
    op = _build(call, lambda: BoundBatchNorm(bn))
    why = "batch-norm statistics are not outputs of the eval-mode network"
    return (Lowered(op, (x,)), Refused(why), Refused(why))


def _batch_norm_train(call: Call) -> Any:
    call.refuse(
        "batch norm in training mode normalises with the batch's own statistics, which mixes "
        "rows; put the model in eval mode"
    )


def _avg_pool2d(call: Call) -> Lowered:
    x = call.var(0)
    names = (
        "kernel_size",
        "stride",
        "padding",
        "ceil_mode",
        "count_include_pad",
        "divisor_override",
    )
    params = dict(zip(names, (call.value(a) for a in call.args[1:]), strict=False))
    params.update({k: call.value(v) for k, v in call.kwargs.items()})
    if not params.get("stride"):
        params["stride"] = None
    op = _build(call, lambda: BoundAvgPool2d(nn.AvgPool2d(**params)))
    return Lowered(op, (x,))


def _max_pool2d(call: Call) -> tuple:
    x = call.var(0)
    names = ("kernel_size", "stride", "padding", "dilation", "ceil_mode")
    params = dict(zip(names, (call.value(a) for a in call.args[1:]), strict=False))
    params.update({k: call.value(v) for k, v in call.kwargs.items()})
    if not params.get("stride"):
        params["stride"] = None
    op = _build(call, lambda: BoundMaxPool2d(nn.MaxPool2d(**params)))
    return (Lowered(op, (x,)), Refused("max-pool indices are not bounded"))


def _reshape(call: Call) -> Lowered:
    x = call.var(0)
    shape = call.args[1]
    if any(isinstance(v, Var) for v in shape):
        call.refuse("a shape computed from the input's values")
    in_shape = call.in_shapes[0]
    if in_shape is not None and len(call.out_shape) == 1 and len(in_shape) > 1:
        # (N, ...) -> (N, prod): a flatten, which the receptive-field engine recognises
        return Lowered(BoundFlatten(nn.Flatten()), (x,))

    def fn(t: Tensor, shapes: dict) -> Tensor:
        return t.reshape(*resolve(tuple(shape), t.shape[0]))

    return Lowered(BoundReshape(fn, (), call.name, call.where), (x,))


def _arith(call: Call, kind: str, const: Any) -> Lowered:
    x = next(a for a in call.args[:2] if isinstance(a, Var))
    if isinstance(const, BatchDependent):
        call.refuse("arithmetic with a tensor built from the batch size")
    c = call.const(const) if const is not None else (lambda: None)
    return Lowered(BoundConstArith(kind, c, call.name, call.where), (x,))


def _add_sub(sign: float) -> Callable[[Call], Lowered]:
    def rule(call: Call) -> Lowered:
        a, b = call.args[:2]
        alpha = call.kwargs.get("alpha", 1)
        if isinstance(a, Var) and isinstance(b, Var):
            if alpha != 1:
                call.refuse("alpha other than 1 between two computed tensors")
            return Lowered(BoundAdd(sign, call.name, call.where), (a, b))
        if isinstance(b, Var):  # c + alpha * x  /  c - alpha * x
            if alpha != 1:
                call.refuse("alpha other than 1 on the computed tensor")
            return _arith(call, "add" if sign > 0 else "rsub", a)
        if alpha != 1:
            c = call.const(b)
            return _arith(call, "add" if sign > 0 else "sub", _scaled(c, alpha))
        return _arith(call, "add" if sign > 0 else "sub", b)

    return rule


def _scaled(c: Callable[[], Any], alpha: float) -> Any:
    from .lower import Const

    return Const(lambda: c() * alpha)


def _mul(call: Call) -> Lowered:
    a, b = call.args[:2]
    if isinstance(a, Var) and isinstance(b, Var):
        call.refuse("the product of two computed tensors is not linear")
    return _arith(call, "mul", b if isinstance(a, Var) else a)


def _div(call: Call) -> Lowered:
    a, b = call.args[:2]
    if not isinstance(a, Var) or isinstance(b, Var):
        call.refuse("division by a computed tensor is not linear")
    return _arith(call, "div", b)


def _neg(call: Call) -> Lowered:
    return Lowered(BoundConstArith("neg", lambda: None, call.name, call.where), (call.var(0),))


def _cat(call: Call) -> Lowered:
    parts = call.args[0]
    dim = call.value(call.args[1]) if len(call.args) > 1 else call.kwargs.get("dim", 0)
    if not all(isinstance(p, Var) for p in parts):
        call.refuse("concatenation with constant tensors")
    d = call.dim(dim, len(call.out_shape) + 1)
    return Lowered(BoundCat(d, call.name, call.where), tuple(parts))


def _dropout(call: Call) -> tuple:
    train = call.value(call.args[2]) if len(call.args) > 2 else call.kwargs.get("train")
    if train or train is None:
        call.refuse(
            "dropout is active in the model's forward (training=True): its output is random and "
            "cannot be certified; use nn.Dropout under model.eval() or pass "
            "training=self.training"
        )
    return (_identity(call), Refused("a dropout mask is not an output of the network"))


def _random(call: Call) -> Any:
    call.refuse("random values cannot be bounded")


RULES: dict[Any, Callable[[Call], Any]] = {
    aten.relu.default: _relu,
    aten.clone.default: _identity,
    aten.alias.default: _identity,
    aten.detach.default: _identity,
    aten.lift_fresh_copy.default: _identity,
    aten._to_copy.default: _to_copy,
    aten.linear.default: _linear,
    aten.addmm.default: _addmm,
    aten.mm.default: _mm,
    aten.convolution.default: _convolution,
    aten._native_batch_norm_legit_no_training.default: _batch_norm_eval,
    aten._native_batch_norm_legit_functional.default: _batch_norm_train,
    aten._native_batch_norm_legit.default: _batch_norm_train,
    aten._native_batch_norm_legit.no_stats: _batch_norm_train,
    aten.native_batch_norm.default: _batch_norm_train,
    aten.avg_pool2d.default: _avg_pool2d,
    aten.max_pool2d_with_indices.default: _max_pool2d,
    aten.view.default: _reshape,
    aten._unsafe_view.default: _reshape,
    aten.reshape.default: _reshape,
    aten.add.Tensor: _add_sub(1.0),
    aten.sub.Tensor: _add_sub(-1.0),
    aten.mul.Tensor: _mul,
    aten.div.Tensor: _div,
    aten.neg.default: _neg,
    aten.cat.default: _cat,
    aten.native_dropout.default: _dropout,
    aten.bernoulli.p: _random,
    aten.rand_like.default: _random,
    aten.randn_like.default: _random,
}

for _target, _rule in RULES.items():
    register_op(_target, _rule)
