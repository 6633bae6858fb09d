"""Softmax and log-softmax over a non-batch dimension: interval bounds, constant relaxations.

Models often end in ``softmax``; refusing them left users with no certificate at all. The
bounds are the exact coordinate-wise image of an input box: ``softmax(z)_i`` grows with
``z_i`` and falls with every other ``z_j``, so over ``[l, u]``

    softmax_i >= exp(l_i) / (exp(l_i) + sum_{j != i} exp(u_j))
    softmax_i <= exp(u_i) / (exp(u_i) + sum_{j != i} exp(l_j))

(log-softmax likewise, in log space). CROWN tightens the op's input box first (the op is
``nonlinear``), then relaxes the output by those constants: sound, as tight as the logits'
bounds allow per output, though not linear in the input.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .base import BackwardOptions, BoundOp, Trace
from .box import Box
from .errors import UnsupportedOp
from .lower import Call, Lowered, register_op


def _log_denominators(own: Tensor, others: Tensor, dim: int) -> Tensor:
    """``log(exp(own_i) + sum_{j != i} exp(others_j))`` along ``dim``, for every i.

    The sum over j != i is the total minus the own term; where the own term dominates the
    total that difference cancels, so the largest entry's sum is recomputed directly."""
    m = torch.maximum(own.amax(dim, keepdim=True), others.amax(dim, keepdim=True))
    e_other = torch.exp(others - m)
    rest = e_other.sum(dim, keepdim=True) - e_other
    top = e_other.argmax(dim, keepdim=True)
    rest = rest.scatter(dim, top, e_other.scatter(dim, top, 0.0).sum(dim, keepdim=True))
    return m + torch.log(torch.exp(own - m) + rest.clamp(min=0.0))


class BoundSoftmax(BoundOp):
    """``softmax(x, dim)`` (``log=False``) or ``log_softmax(x, dim)`` (``log=True``)."""

    nonlinear = True

    def __init__(self, dim: int, log: bool, name: str = "softmax", where: str = "") -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.dim, self.log, self.name, self.where = int(dim), bool(log), name, where

    def _dim(self, ndim: int) -> int:
        d = self.dim % ndim
        if d == 0:
            raise UnsupportedOp(self.name, self.where, "a softmax over the batch dimension")
        return d

    def forward(self, x: Tensor) -> Tensor:
        d = self._dim(x.dim())
        return torch.log_softmax(x, d) if self.log else torch.softmax(x, d)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        d = self._dim(box.centre.dim())
        lo, hi = box.lo, box.hi
        log_lo = lo - _log_denominators(lo, hi, d)
        log_hi = hi - _log_denominators(hi, lo, d)
        if self.log:
            return Box.from_bounds(log_lo, torch.minimum(log_hi, torch.zeros_like(log_hi)))
        return Box.from_bounds(torch.exp(log_lo), torch.exp(log_hi).clamp(max=1.0))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        out = self.interval(self.pre(trace))
        n, s = a.shape[:2]
        lo = out.lo.reshape(n, 1, -1)
        hi = out.hi.reshape(n, 1, -1)
        coef = a.reshape(n, s, -1)
        bias = (coef.clamp(min=0) * lo + coef.clamp(max=0) * hi).sum(2)
        return torch.zeros(n, s, *self.pre(trace).centre.shape[1:], dtype=a.dtype), bias


def _rule(log: bool):
    def rule(call: Call) -> Lowered:
        dim = call.args[1] if len(call.args) > 1 else call.kwargs.get("dim")
        if not isinstance(dim, int):
            call.refuse("a softmax whose dimension is not a constant integer")
        if dim % (len(call.out_shape) + 1) == 0:
            call.refuse("a softmax over the batch dimension mixes the rows of the batch")
        return Lowered(BoundSoftmax(dim, log, call.name, call.where), (call.var(0),))

    return rule


RULES: dict[Any, Any] = {
    torch.ops.aten._softmax.default: _rule(False),
    torch.ops.aten._log_softmax.default: _rule(True),
}

for _target, _r in RULES.items():
    register_op(_target, _r)
