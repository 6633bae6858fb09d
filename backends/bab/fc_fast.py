"""A float32 back-substitution for fully connected ReLU chains, used only to *choose* slopes
and multipliers: the optimiser's iterations run here (about twice as fast on a CPU as the
generic float64 ops), and the bound it returns is then computed once by the generic float64
pass with the chosen values (`optimize.backward`), so float32 round-off can cost tightness,
never soundness."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor

from threatlang.bounds.affine import BoundFlatten, BoundIdentity, BoundLinear
from threatlang.bounds.nonlinear import BoundReLU

F32 = torch.float32


@attrs.frozen(eq=False)
class FcChain:
    """(W, b) per Linear, float32; the network is Linear (ReLU Linear)* after flattening."""

    layers: tuple[tuple[Tensor, Tensor], ...]

    @classmethod
    def of(cls, ops) -> FcChain | None:
        layers, expect_linear = [], True
        for op in ops:
            if isinstance(op, BoundFlatten | BoundIdentity) and not layers:
                continue
            if isinstance(op, BoundLinear) and expect_linear:
                w = op.module.weight.detach()
                if w.dim() != 2:
                    return None
                b = op.module.bias
                b = torch.zeros(w.shape[0], dtype=w.dtype) if b is None else b.detach()
                layers.append((w.to(F32).contiguous(), b.to(F32)))
                expect_linear = False
            elif isinstance(op, BoundReLU) and not expect_linear:
                expect_linear = True
            else:
                return None
        return cls(tuple(layers)) if layers and not expect_linear else None

    def lower(
        self,
        lo: Tensor,
        hi: Tensor,
        spec: Tensor,
        pre: Sequence[tuple[Tensor, Tensor]],
        alphas: Sequence[Tensor],
        betas: Sequence[Tensor] | None,
        signs: Sequence[Tensor] | None,
    ) -> Tensor:
        """(N, S) lower bounds of `spec` (N, S, outputs) over the flat boxes [lo, hi] with the
        ReLU input bounds `pre` fixed, lower slopes `alphas` and split terms (all float32)."""
        a = spec
        bias = a.new_zeros(a.shape[:2])
        for layer in range(len(self.layers) - 1, -1, -1):
            w, b = self.layers[layer]
            bias = bias + a @ b
            a = a @ w
            if layer == 0:
                break
            low, up = pre[layer - 1]
            unstable = (low < 0) & (up > 0)
            active = (low >= 0).to(F32)
            width = torch.where(unstable, up - low, torch.ones_like(up))
            up_slope = torch.where(unstable, up / width, active)
            up_icpt = torch.where(unstable, -low * up / width, torch.zeros_like(up))
            lo_slope = torch.where(
                unstable[:, None], alphas[layer - 1].clamp(0, 1), active[:, None]
            )
            pos, neg = a.clamp(min=0), a.clamp(max=0)
            bias = bias + (neg * up_icpt[:, None]).sum(2)
            a = pos * lo_slope + neg * up_slope[:, None]
            if betas is not None and signs is not None:
                a = a - betas[layer - 1].clamp(min=0) * signs[layer - 1][:, None]
        centre, radius = (hi + lo) / 2, (hi - lo) / 2
        return (a * centre[:, None]).sum(2) - (a.abs() * radius[:, None]).sum(2) + bias
