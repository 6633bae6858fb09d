"""Chains of bound ops (the view the receptive-field and pooling engines walk) and the
two walks over a chain. The ops come from the traced graph (:mod:`.capture`)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from .base import BackwardOptions, BoundOp, Trace
from .box import Box
from .capture import capture


def build_ops(module: nn.Module, example: Tensor) -> list[BoundOp]:
    """``module``'s captured computation on inputs shaped like ``example``, as a chain of
    single-input ops (residual blocks and other branching runs become one segment op);
    raises UnsupportedOp otherwise."""
    return capture(module, example).chain()


def forward(ops: Sequence[BoundOp], x: Tensor) -> Tensor:
    for op in ops:
        x = op.forward(x)
    return x


def propagate(ops: Sequence[BoundOp], box: Box, trace: Trace | None = None) -> Box:
    """IBP through ``ops``; records each op's input box in ``trace`` when given."""
    for op in ops:
        if trace is not None:
            trace[id(op)] = box
        box = op.interval(box, trace)
    return box


def back_substitute(
    ops: Sequence[BoundOp], a: Tensor, trace: Trace, opts: BackwardOptions
) -> tuple[Tensor, Tensor]:
    """Carry ``A`` from the output of ``ops`` to their input; returns (A_in, summed bias).

    ``A`` expanded along the batch (stride 0: the same spec for every row) stays one row
    through the ops that keep it shared (``shared_rows``); A_in may then be such a view."""
    n = a.shape[0]
    if n > 1 and a.stride(0) == 0:
        a = a[:1]
    bias = a.new_zeros(a.shape[:2])
    for op in reversed(ops):
        if a.shape[0] != n and not op.shared_rows:
            a = a.expand(n, *a.shape[1:])
        a, b = op.backward(a, trace, opts)
        bias = bias + b
    if a.shape[0] != n:
        a = a.expand(n, *a.shape[1:])
    if bias.shape[0] != n:
        bias = bias.expand(n, bias.shape[1]).contiguous()
    return a, bias
