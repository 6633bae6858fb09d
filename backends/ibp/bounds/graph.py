"""Turning a torch module into a chain of bound ops, and walking that chain both ways."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from ..layers import Residual
from .affine import (
    BoundAvgPool2d,
    BoundBatchNorm,
    BoundConv2d,
    BoundFlatten,
    BoundIdentity,
    BoundLinear,
)
from .base import BackwardOptions, BoundOp, Trace
from .box import Box
from .errors import UnsupportedLayer
from .nonlinear import BoundMaxPool2d, BoundReLU

_REGISTRY: tuple[tuple[type[nn.Module], type[BoundOp]], ...] = (
    (nn.Linear, BoundLinear),
    (nn.Conv2d, BoundConv2d),
    (nn.modules.batchnorm._BatchNorm, BoundBatchNorm),
    (nn.Flatten, BoundFlatten),
    (nn.AvgPool2d, BoundAvgPool2d),
    (nn.MaxPool2d, BoundMaxPool2d),
    (nn.ReLU, BoundReLU),
    (nn.Identity, BoundIdentity),
    (nn.Dropout, BoundIdentity),
)


class BoundResidual(BoundOp):
    """Residual add: intervals add (centres and radii); back-substitution sums both branches."""

    def __init__(self, module: Residual) -> None:
        super().__init__(module)
        self.body = build_ops(module.body)
        self.shortcut = build_ops(module.shortcut)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        a = propagate(self.body, box, trace)
        b = propagate(self.shortcut, box, trace)
        return Box(a.centre + b.centre, a.radius + b.radius)

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        a_body, bias_body = back_substitute(self.body, a, trace, opts)
        a_short, bias_short = back_substitute(self.shortcut, a, trace, opts)
        return a_body + a_short, bias_body + bias_short


def build_ops(module: nn.Module) -> list[BoundOp]:
    """Flatten nested ``nn.Sequential`` into bound ops; raise UnsupportedLayer otherwise."""
    if isinstance(module, nn.Sequential):
        return [op for child in module for op in build_ops(child)]
    if isinstance(module, Residual):
        return [BoundResidual(module)]
    for kind, op in _REGISTRY:
        if isinstance(module, kind):
            return [op(module)]
    raise UnsupportedLayer(module, "no bound rule for this layer type")


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
    """Carry ``A`` from the output of ``ops`` to their input; returns (A_in, summed bias)."""
    bias = a.new_zeros(a.shape[:2])
    for op in reversed(ops):
        a, b = op.backward(a, trace, opts)
        bias = bias + b
    return a, bias
