"""Input sets a bound starts from: boxes (patches, l-inf balls) and l2 balls."""

from __future__ import annotations

import abc
from typing import ClassVar

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from . import BoundOp, Box, Trace
from .affine import BoundConv2d, BoundLinear


class InputSet(abc.ABC):
    """A set of inputs per row; knows its enclosing box and how to minimise a linear form."""

    #: is the set its enclosing box? Then IBP through one affine layer is exact per neuron and
    #: CROWN need not tighten it; an l2 ball is much smaller than its box, so it is not
    is_box: ClassVar[bool] = True

    @abc.abstractmethod
    def box(self) -> Box: ...

    @abc.abstractmethod
    def concretize(self, a: Tensor, bias: Tensor) -> Tensor:
        """``min over x in the set of A . x + bias`` with ``A`` of shape (N, S, *in_shape)."""

    def through_first(self, op: BoundOp, trace: Trace | None = None) -> Box:
        """Box of the first op's output; subclasses may be exact where a box is loose."""
        return op.interval(self.box(), trace)

    @abc.abstractmethod
    def sample(self, k: int, gen: torch.Generator) -> Tensor:
        """``k`` points of the set per row, (k, N, *shape): its extreme points first (corners
        of a box, the sphere of a ball), where bounds are tight and translation errors show."""


@attrs.frozen(eq=False)
class BoxInput(InputSet):
    value: Box

    def box(self) -> Box:
        return self.value

    def concretize(self, a: Tensor, bias: Tensor) -> Tensor:
        c = self.value.centre.unsqueeze(1).flatten(2)
        r = self.value.radius.unsqueeze(1).flatten(2)
        a = a.flatten(2)
        return (a * c).sum(2) - (a.abs() * r).sum(2) + bias

    def sample(self, k: int, gen: torch.Generator) -> Tensor:
        lo, hi = self.value.lo, self.value.hi
        signs = torch.rand((k, *lo.shape), generator=gen, device=gen.device).to(lo.device) < 0.5
        pts = torch.where(signs, hi, lo)
        pts[0], pts[min(1, k - 1)] = lo, hi
        if k > 3:  # one interior point
            u = torch.rand(lo.shape, generator=gen, device=gen.device).to(lo)
            pts[2] = lo + u * (hi - lo)
        return pts


def linf_ball(x: Tensor, eps: float, low: float = 0.0, high: float = 1.0) -> BoxInput:
    """The l-inf ball of radius ``eps`` intersected with the pixel domain [low, high]."""
    return BoxInput(Box.from_bounds((x - eps).clamp(low, high), (x + eps).clamp(low, high)))


@attrs.frozen(eq=False)
class L2Input(InputSet):
    """``{x : ||x - x0||_2 <= eps}`` (not intersected with the pixel domain: a superset)."""

    x0: Tensor
    eps: float
    is_box: ClassVar[bool] = False

    def box(self) -> Box:
        return Box(self.x0, torch.full_like(self.x0, self.eps))

    def concretize(self, a: Tensor, bias: Tensor) -> Tensor:
        a = a.flatten(2)
        return (a * self.x0.unsqueeze(1).flatten(2)).sum(2) - self.eps * a.norm(dim=2) + bias

    def sample(self, k: int, gen: torch.Generator) -> Tensor:
        d = torch.randn((k, *self.x0.shape), generator=gen, device=gen.device).to(self.x0)
        norms = d.flatten(2).norm(dim=2).clamp(min=1e-12)
        return self.x0 + self.eps * d / norms.reshape(k, -1, *([1] * (self.x0.dim() - 1)))

    def through_first(self, op: BoundOp, trace: Trace | None = None) -> Box:
        """Exact for a first Linear (row norms); sound for Conv2d (full-kernel norms)."""
        if isinstance(op, BoundLinear):
            w = op.module.weight
            if self.x0.dim() != 2:  # a Linear over the last dim of an N-D input
                return op.interval(self.box(), trace)
            centre = F.linear(self.x0, w, op.module.bias)
            return Box(centre, (self.eps * w.norm(dim=1)).expand_as(centre))
        if isinstance(op, BoundConv2d):
            centre = op.forward(self.x0)
            norms = op.module.weight.flatten(1).norm(dim=1)[:, None, None]
            return Box(centre, (self.eps * norms).expand_as(centre).contiguous())
        return op.interval(self.box(), trace)
