"""Lowering rules for activations (clamp, abs, LeakyReLU, sigmoid, tanh), max over a dim,
upsampling, transposed and 1-d convolutions, and the shape ops core ATen emits (permute,
slice, select, index, squeeze, unsqueeze, expand, pad, sum, mean, matmul, split).

Constant operands that may be trained (a matmul's matrix, a transposed convolution's weight)
are read live, as in :mod:`.rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .activations import BoundAbs, BoundClamp, BoundLeakyReLU, BoundSigmoid, BoundTanh
from .affine import BoundConvTranspose2d
from .lower import Call, Lowered, Refused, Var, live, register_op
from .nonlinear import BoundAmax
from .shape_ops import (
    BoundExpand,
    BoundIndex,
    BoundMatmulConst,
    BoundMean,
    BoundPad,
    BoundPermute,
    BoundSelect,
    BoundSlice,
    BoundSqueeze,
    BoundSum,
    BoundUnsqueeze,
    BoundUpsample,
    MatmulSide,
    UpsampleMode,
)

aten = torch.ops.aten


class LiveConvTranspose2d(BoundConvTranspose2d):
    weight = live("weight")
    bias = live("bias")

    def __init__(self, weight, bias, *geometry) -> None:  # noqa: ANN001
        self._live = {"weight": weight, "bias": bias}
        super().__init__(weight(), bias(), *geometry)


class LiveMatmulConst(BoundMatmulConst):
    w = live("w")

    def __init__(self, w, side: MatmulSide, name: str, where: str) -> None:  # noqa: ANN001
        self._live = {"w": w}
        super().__init__(w(), side, name, where)


def _arg(call: Call, i: int, name: str, default: Any) -> Any:
    if len(call.args) > i:
        return call.value(call.args[i])
    v = call.kwargs.get(name, default)
    return call.value(v) if v is not None else None


def _unary(make: Callable[[Call], Any]) -> Callable[[Call], Lowered]:
    def rule(call: Call) -> Lowered:
        return Lowered(make(call), (call.var(0),))

    return rule


def _clamp(call: Call) -> Lowered:
    lo, hi = _arg(call, 1, "min", None), _arg(call, 2, "max", None)
    if isinstance(lo, Tensor) or isinstance(hi, Tensor):
        call.refuse("clamp to tensor bounds")
    if lo is None and hi is None:
        return Lowered(_identity_op(), (call.var(0),))
    return Lowered(BoundClamp(lo, hi, call.name, call.where), (call.var(0),))


def _identity_op():
    from torch import nn

    from .affine import BoundIdentity

    return BoundIdentity(nn.Identity())


def _amax(call: Call) -> Lowered:
    dims = _arg(call, 1, "dim", [])
    keep = bool(_arg(call, 2, "keepdim", False))
    if not dims:
        call.refuse("a max over every dimension mixes the rows of the batch")
    return Lowered(BoundAmax(tuple(dims), keep, call.name, call.where), (call.var(0),))


def _max_dim(call: Call) -> tuple:
    dim = _arg(call, 1, "dim", None)
    keep = bool(_arg(call, 2, "keepdim", False))
    op = BoundAmax(int(dim), keep, call.name, call.where)
    return (Lowered(op, (call.var(0),)), Refused("the position of a maximum is not bounded"))


def _upsample(mode: UpsampleMode, bilinear: bool) -> Callable[[Call], Lowered]:
    def rule(call: Call) -> Lowered:
        size = _arg(call, 1, "output_size", None)
        if bilinear:
            align = bool(_arg(call, 2, "align_corners", False))
            scales = _arg(call, 3, "scale_factors", None)
        else:
            align, scales = False, _arg(call, 2, "scale_factors", None)
        op = BoundUpsample(mode, size, scales, align, call.name, call.where)
        return Lowered(op, (call.var(0),))

    return rule


def _permute(call: Call) -> Lowered:
    dims = _arg(call, 1, "dims", None)
    return Lowered(BoundPermute(dims, call.name, call.where), (call.var(0),))


def _slice(call: Call) -> Lowered:
    dim = _arg(call, 1, "dim", 0)
    start, end = _arg(call, 2, "start", None), _arg(call, 3, "end", None)
    step = _arg(call, 4, "step", 1)
    op = BoundSlice(dim, start, end, step, call.name, call.where)
    return Lowered(op, (call.var(0),))


def _select(call: Call) -> Lowered:
    dim, index = _arg(call, 1, "dim", None), _arg(call, 2, "index", None)
    call.dim(dim, len(call.in_shapes[0] or ()) + 1)
    return Lowered(BoundSelect(dim, index, call.name, call.where), (call.var(0),))


def _index(call: Call) -> Lowered:
    indices = call.args[1]
    used = [(d, v) for d, v in enumerate(indices) if v is not None]
    if len(used) != 1 or used[0][0] == 0:
        call.refuse("indexing with several index tensors or along the batch dimension")
    d, v = used[0]
    return Lowered(BoundIndex(d, call.value(v), call.name, call.where), (call.var(0),))


def _squeeze(call: Call) -> Lowered:
    dims = _arg(call, 1, "dim", None)
    return Lowered(BoundSqueeze(dims, call.name, call.where), (call.var(0),))


def _unsqueeze(call: Call) -> Lowered:
    dim = _arg(call, 1, "dim", None)
    return Lowered(BoundUnsqueeze(dim, call.name, call.where), (call.var(0),))


def _expand(call: Call) -> Lowered:
    size = call.args[1]
    shape = [-1 if i == 0 else call.value(s) for i, s in enumerate(size)]
    return Lowered(BoundExpand(shape, call.name, call.where), (call.var(0),))


def _pad(call: Call) -> Lowered:
    pad, value = _arg(call, 1, "pad", None), _arg(call, 2, "value", 0.0)
    return Lowered(BoundPad(pad, value or 0.0, call.name, call.where), (call.var(0),))


def _reduce(cls: type) -> Callable[[Call], Lowered]:
    def rule(call: Call) -> Lowered:
        dims = _arg(call, 1, "dim", None)
        keep = bool(_arg(call, 2, "keepdim", False))
        if not dims:
            call.refuse("a reduction over every dimension mixes the rows of the batch")
        return Lowered(cls(dims, keep, call.name, call.where), (call.var(0),))

    return rule


def _matmul(call: Call) -> Lowered:
    a, b = call.args[:2]
    if isinstance(a, Var) and isinstance(b, Var):
        call.refuse("the product of two computed tensors is not linear")
    x, w, side = (a, b, MatmulSide.RIGHT) if isinstance(a, Var) else (b, a, MatmulSide.LEFT)
    op = LiveMatmulConst(call.const(w), side, call.name, call.where)
    return Lowered(op, (x,))


def conv_transpose(call: Call, x: Var, w, b, stride, padding, dilation, out_pad, groups) -> Lowered:  # noqa: ANN001
    if len(stride) != 2:
        call.refuse(f"{len(stride)}-d transposed convolution")
    op = LiveConvTranspose2d(
        w, b, tuple(stride), tuple(padding), tuple(out_pad), int(groups), tuple(dilation)
    )
    return Lowered(op, (x,))


def _split(call: Call) -> tuple:
    """``split`` / ``split_with_sizes``: one slice per chunk."""
    x = call.var(0)
    sizes = _arg(call, 1, "split_size", None)
    dim = _arg(call, 2, "dim", 0)
    length = (call.in_shapes[0] or ())[dim - 1 if dim > 0 else dim]
    if isinstance(sizes, int):
        sizes = [min(sizes, length - s) for s in range(0, length, sizes)]
    out, start = [], 0
    for k in sizes:
        out.append(Lowered(BoundSlice(dim, start, start + k, 1, call.name, call.where), (x,)))
        start += k
    call.dim(dim, len(call.in_shapes[0] or ()) + 1)
    return tuple(out)


def _assert_metadata(call: Call) -> None:
    """A dtype/shape assertion the export inserts: checks, computes nothing."""
    return None


def _index_select(call: Call) -> Lowered:
    dim = _arg(call, 1, "dim", None)
    call.dim(dim, len(call.in_shapes[0] or ()) + 1)
    index = call.value(call.args[2])
    return Lowered(BoundIndex(dim, index, call.name, call.where), (call.var(0),))


def _amin(call: Call) -> Lowered:
    """``amin(x) = -amax(-x)``."""
    from .affine import BoundConstArith

    dims = _arg(call, 1, "dim", [])
    keep = bool(_arg(call, 2, "keepdim", False))
    if not dims:
        call.refuse("a min over every dimension mixes the rows of the batch")
    neg = BoundConstArith("neg", lambda: None, call.name, call.where)
    neg2 = BoundConstArith("neg", lambda: None, call.name, call.where)
    amax = BoundAmax(tuple(dims), keep, call.name, call.where)
    return Lowered(neg, (call.var(0),), (amax, neg2))


def _extremum(upper: bool) -> Callable[[Call], Lowered]:
    """``maximum(x, c)`` / ``minimum(x, c)`` with a scalar constant ``c``: a clamp."""

    def rule(call: Call) -> Lowered:
        a, b = call.args[:2]
        if isinstance(a, Var) and isinstance(b, Var):
            call.refuse("the extremum of two computed tensors has no bound rule")
        x, c = (a, b) if isinstance(a, Var) else (b, a)
        value = call.value(c)
        if isinstance(value, Tensor):
            if value.numel() != 1:
                call.refuse("an extremum with a non-scalar constant tensor")
            value = float(value)
        lo, hi = (value, None) if upper else (None, value)
        return Lowered(BoundClamp(lo, hi, call.name, call.where), (x,))

    return rule


RULES: dict[Any, Callable[[Call], Any]] = {
    aten._assert_tensor_metadata.default: _assert_metadata,
    aten.index_select.default: _index_select,
    aten.amin.default: _amin,
    aten.maximum.default: _extremum(True),
    aten.minimum.default: _extremum(False),
    aten.leaky_relu.default: _unary(
        lambda c: BoundLeakyReLU(_arg(c, 1, "negative_slope", 0.01), c.name, c.where)
    ),
    aten.abs.default: _unary(lambda c: BoundAbs(c.name, c.where)),
    aten.sigmoid.default: _unary(lambda c: BoundSigmoid(c.name, c.where)),
    aten.tanh.default: _unary(lambda c: BoundTanh(c.name, c.where)),
    aten.clamp.default: _clamp,
    aten.hardtanh.default: _unary(
        lambda c: BoundClamp(
            _arg(c, 1, "min_val", -1.0), _arg(c, 2, "max_val", 1.0), c.name, c.where
        )
    ),
    aten.clamp_min.default: _unary(
        lambda c: BoundClamp(_arg(c, 1, "min", None), None, c.name, c.where)
    ),
    aten.clamp_max.default: _unary(
        lambda c: BoundClamp(None, _arg(c, 1, "max", None), c.name, c.where)
    ),
    aten.amax.default: _amax,
    aten.max.dim: _max_dim,
    aten.upsample_nearest2d.vec: _upsample(UpsampleMode.NEAREST, False),
    aten._upsample_nearest_exact2d.vec: _upsample(UpsampleMode.NEAREST_EXACT, False),
    aten.upsample_bilinear2d.vec: _upsample(UpsampleMode.BILINEAR, True),
    aten.permute.default: _permute,
    aten.slice.Tensor: _slice,
    aten.select.int: _select,
    aten.index.Tensor: _index,
    aten.squeeze.dims: _squeeze,
    aten.squeeze.dim: _squeeze,
    aten.squeeze.default: _squeeze,
    aten.unsqueeze.default: _unsqueeze,
    aten.expand.default: _expand,
    aten.constant_pad_nd.default: _pad,
    aten.sum.dim_IntList: _reduce(BoundSum),
    aten.mean.dim: _reduce(BoundMean),
    aten.matmul.default: _matmul,
    aten.split_with_sizes.default: _split,
    aten.split.Tensor: _split,
}

for _target, _rule in RULES.items():
    register_op(_target, _rule)
