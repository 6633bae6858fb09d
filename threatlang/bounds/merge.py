"""Ops joining several computed tensors: sums written in ``forward`` (residual connections)
and concatenation. Both are linear, so intervals and coefficients pass through exactly."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .base import BackwardOptions, BoundOp, Trace
from .box import Box
from .errors import UnsupportedOp


class BoundAdd(BoundOp):
    """``x + y`` (``sign=-1``: ``x - y``) of two computed tensors of the same rank and rows,
    broadcasting other size-1 dimensions (a per-channel map added to a feature map)."""

    shared_rows = True

    def __init__(self, sign: float = 1.0, name: str = "add", where: str = "") -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.sign, self.name, self.where = sign, name, where

    def _check(self, a: Tensor, b: Tensor) -> None:
        if a.shape == b.shape:
            return
        ok = a.dim() == b.dim() and a.shape[0] == b.shape[0]
        try:
            torch.broadcast_shapes(a.shape, b.shape)
        except RuntimeError:
            ok = False
        if not ok:
            raise UnsupportedOp(
                self.name,
                self.where,
                f"operands of shapes {tuple(a.shape)} and {tuple(b.shape)} broadcast "
                "across the batch dimension",
            )

    def forward_all(self, xs: Sequence[Tensor]) -> Tensor:
        self._check(xs[0], xs[1])
        return xs[0] + xs[1] if self.sign > 0 else xs[0] - xs[1]

    def interval_all(self, boxes: Sequence[Box], trace: Trace | None = None) -> Box:
        a, b = boxes
        self._check(a.centre, b.centre)
        if trace is not None and a.centre.shape != b.centre.shape:
            trace[("shapes", id(self))] = (a.centre.shape[1:], b.centre.shape[1:])
        centre = a.centre + b.centre if self.sign > 0 else a.centre - b.centre
        return Box(centre, a.radius + b.radius)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        raise TypeError("BoundAdd takes two inputs")

    def backward_all(
        self, a: Tensor, trace: Trace, opts: BackwardOptions
    ) -> tuple[list[Tensor | None], Tensor]:
        second = a if self.sign > 0 else -a
        shapes = trace.get(("shapes", id(self)))
        if shapes is None:
            return [a, second], a.new_zeros(a.shape[:2])
        n, s = a.shape[:2]  # sum the coefficients of broadcast (repeated) elements back
        return [a.sum_to_size(n, s, *shapes[0]), second.sum_to_size(n, s, *shapes[1])], a.new_zeros(
            n, s
        )

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        raise TypeError("BoundAdd takes two inputs")


class BoundCat(BoundOp):
    """``torch.cat(xs, dim)`` along a non-batch dimension."""

    shared_rows = True

    def __init__(self, dim: int, name: str = "cat", where: str = "") -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.dim, self.name, self.where = dim, name, where

    def _dim(self, x: Tensor) -> int:
        d = self.dim % x.dim()
        if d == 0:
            raise UnsupportedOp(self.name, self.where, "concatenation along the batch dimension")
        return d

    def forward_all(self, xs: Sequence[Tensor]) -> Tensor:
        return torch.cat(list(xs), self._dim(xs[0]))

    def interval_all(self, boxes: Sequence[Box], trace: Trace | None = None) -> Box:
        d = self._dim(boxes[0].centre)
        if trace is not None:
            trace[id(self)] = tuple(boxes)
        return Box(torch.cat([b.centre for b in boxes], d), torch.cat([b.radius for b in boxes], d))

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return self.interval_all([box], trace)

    def backward_all(
        self, a: Tensor, trace: Trace, opts: BackwardOptions
    ) -> tuple[list[Tensor | None], Tensor]:
        boxes = trace[id(self)]
        d = self._dim(boxes[0].centre)
        sizes = [b.centre.shape[d] for b in boxes]
        return list(torch.split(a, sizes, dim=d + 1)), a.new_zeros(a.shape[:2])

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        (a_in,), bias = self.backward_all(a, trace, opts)
        return a_in, bias
