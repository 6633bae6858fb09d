"""Bound engine over a whole network: IBP and CROWN lower bounds on classification margins.

Margins ``m_j = z_true - z_j`` (2.3) are bounded with the margin matrix merged into the last
Linear layer (elision, §2.4.1): that layer is never bounded on its own, which is tighter.
"""

from __future__ import annotations

import enum

import attrs
import torch
from torch import Tensor, nn

from .bounds import (
    BackwardOptions,
    BoundOp,
    Box,
    LowerSlope,
    Trace,
    UnsupportedLayer,
    back_substitute,
    build_ops,
    forward,
    propagate,
)
from .bounds.affine import BoundBatchNorm, BoundConv2d, BoundFlatten, BoundIdentity, BoundLinear
from .bounds.nonlinear import BoundReLU
from .inputs import InputSet


class Method(enum.Enum):
    IBP = "ibp"
    CROWN_IBP = "crown_ibp"  # linear back-substitution, IBP intermediate bounds
    CROWN = "crown"  # linear back-substitution, intermediate ReLU bounds by CROWN too


@attrs.frozen
class BoundConfig:
    method: Method = Method.IBP
    lower_slope: LowerSlope = LowerSlope.ZERO


def margin_matrix(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``C[n, j] = e_{y_n} - e_j`` of shape (N, K, K); row ``y_n`` is zero."""
    eye = torch.eye(num_classes, device=y.device, dtype=dtype)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


class BoundedNetwork:
    """A torch module compiled to bound ops. Raises UnsupportedLayer at construction."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        ops = build_ops(model)
        if not ops:
            raise UnsupportedLayer(model, "empty network")
        self.ops: list[BoundOp] = ops
        last = ops[-1]
        self.last: BoundLinear | None = last if isinstance(last, BoundLinear) else None
        self.body: list[BoundOp] = ops[:-1] if self.last is not None else ops

    def logits(self, x: Tensor) -> Tensor:
        return forward(self.ops, x)

    def interval(self, inputs: InputSet) -> Box:
        """IBP box of the logits (no elision)."""
        return propagate(self.ops[1:], inputs.through_first(self.ops[0]))

    def body_box(self, inputs: InputSet, trace: Trace | None) -> Box:
        if not self.body:
            return inputs.box()
        first = self.body[0]
        if trace is not None:
            trace[id(first)] = inputs.box()
        return propagate(self.body[1:], inputs.through_first(first, trace), trace)

    def _merged_last(self, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
        w, b = self.last.module.weight, self.last.module.bias
        c = margin_matrix(y, k, w.dtype)
        bias = c @ b if b is not None else c.new_zeros(c.shape[:2])
        return c @ w, bias

    def margins(self, inputs: InputSet, y: Tensor, cfg: BoundConfig = BoundConfig()) -> Tensor:
        """Lower bounds (N, K) on ``z_y - z_j`` over the input set; column ``y`` is 0."""
        if cfg.method is Method.IBP:
            return self._ibp_margins(inputs, y)
        return self._crown_margins(inputs, y, cfg)

    def _ibp_margins(self, inputs: InputSet, y: Tensor) -> Tensor:
        if self.last is None:
            box = self.interval(inputs)
            m = box.lo.gather(1, y[:, None]) - box.hi
            return m.scatter(1, y[:, None], 0.0)
        box = self.body_box(inputs, None)
        w, bias = self._merged_last(y, self.last.module.out_features)
        c, r = box.centre.unsqueeze(2), box.radius.unsqueeze(2)
        return (w @ c).squeeze(2) - (w.abs() @ r).squeeze(2) + bias

    def _crown_margins(self, inputs: InputSet, y: Tensor, cfg: BoundConfig) -> Tensor:
        if self.last is None:
            raise UnsupportedLayer(self.ops[-1], "CROWN needs a final Linear layer (elision)")
        opts = BackwardOptions(cfg.lower_slope)
        trace: Trace = {}
        if cfg.method is Method.CROWN:
            self._crown_trace(inputs, trace, opts)
        else:
            self.body_box(inputs, trace)
        a, bias = self._merged_last(y, self.last.module.out_features)
        a_in, b_in = back_substitute(self.body, a, trace, opts)
        return inputs.concretize(a_in, bias + b_in)

    def _crown_trace(self, inputs: InputSet, trace: Trace, opts: BackwardOptions) -> None:
        """IBP pass whose top-level ReLU input boxes are tightened by back-substitution."""
        if not self.body:
            return
        trace[id(self.body[0])] = inputs.box()
        box = inputs.through_first(self.body[0], trace)
        for i in range(1, len(self.body)):
            op = self.body[i]
            if isinstance(op, BoundReLU) and not _ibp_exact(self.body[:i]):
                box = _intersect(box, self._crown_box(inputs, self.body[:i], box, trace, opts))
            trace[id(op)] = box
            box = op.interval(box, trace)

    @staticmethod
    def _crown_box(
        inputs: InputSet, prefix: list[BoundOp], box: Box, trace: Trace, opts: BackwardOptions
    ) -> Box:
        n, shape = box.centre.shape[0], box.centre.shape[1:]
        d = box.centre[0].numel()
        eye = torch.eye(d, device=box.centre.device, dtype=box.centre.dtype)
        spec = torch.cat([eye, -eye]).reshape(1, 2 * d, *shape).expand(n, -1, *shape)
        a_in, bias = back_substitute(prefix, spec, trace, opts)
        bounds = inputs.concretize(a_in, bias)
        lo, neg_hi = bounds[:, :d], bounds[:, d:]
        return Box.from_bounds(lo.reshape(n, *shape), (-neg_hi).reshape(n, *shape))


def _ibp_exact(prefix: list[BoundOp]) -> bool:
    """IBP is already exact per neuron after one affine layer (plus per-element maps) on a box,
    so back-substituting through such a prefix would only repeat it, at a large cost."""
    weighted = [op for op in prefix if isinstance(op, BoundLinear | BoundConv2d)]
    elementwise = all(
        isinstance(op, BoundLinear | BoundConv2d | BoundBatchNorm | BoundFlatten | BoundIdentity)
        for op in prefix
    )
    return elementwise and len(weighted) <= 1


def _intersect(a: Box, b: Box) -> Box:
    lo = torch.maximum(a.lo, b.lo)
    hi = torch.minimum(a.hi, b.hi)
    return Box.from_bounds(lo, torch.maximum(hi, lo))
