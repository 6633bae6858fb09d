"""Adam as a few tensor operations (Kingma & Ba 2015, torch.optim.Adam's defaults and update).

The misreport ascent runs a fresh Adam on every batch; ``torch.optim.Adam`` costs a Python
object, parameter groups and, on first use, a multi-second ``torch._dynamo`` import. This is
the same arithmetic (bias-corrected moments; ``eps`` added after the corrected square root) on
plain tensors, for the ascent and for the mechanism's own parameters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


class Adam:
    """Maximise or minimise with Adam; ``step(grads)`` updates ``params`` in place."""

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.t = 0
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self, grads: Sequence[torch.Tensor]) -> None:
        """One descent step along ``grads`` (negate them to ascend)."""
        self.t += 1
        b1, b2 = self.betas
        c1, c2 = 1 - b1**self.t, math.sqrt(1 - b2**self.t)
        grads = list(grads)
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        # the per-tensor update below, as one multi-tensor op per line (fewer dispatches)
        torch._foreach_lerp_(self.m, grads, 1 - b1)
        torch._foreach_mul_(self.v, b2)
        torch._foreach_addcmul_(self.v, grads, grads, 1 - b2)
        denom = torch._foreach_sqrt(self.v)
        torch._foreach_div_(denom, c2)
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(self.params, self.m, denom, -self.lr / c1)
