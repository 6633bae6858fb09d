"""Bounds on every pre-activation of a ReLU MLP over an input box (the big-M constants).

Two methods: interval arithmetic (IBP; differentiable, used by the stability regulariser at train
time) and backward linear bounds (CROWN-style relaxation; tighter, used at certification time).
Tighter bounds mean fewer unstable ReLUs, fewer binaries and smaller big-M constants.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import torch

Layers = Sequence[tuple[torch.Tensor, torch.Tensor]]
Bounds = list[tuple[torch.Tensor, torch.Tensor]]


class BoundMethod(enum.Enum):
    INTERVAL = "interval"
    LINEAR = "linear"


def interval_bounds(layers: Layers, lo: torch.Tensor, hi: torch.Tensor) -> Bounds:
    """Pre-activation ``(l, u)`` of every affine layer (ReLU between layers), batched ``(B, n)``."""
    out: Bounds = []
    for k, (w, b) in enumerate(layers):
        if k > 0:
            lo, hi = torch.relu(lo), torch.relu(hi)
        mid, rad = (hi + lo) / 2, (hi - lo) / 2
        c, r = mid @ w.T + b, rad @ w.abs().T
        lo, hi = c - r, c + r
        out.append((lo, hi))
    return out


def _relu_relaxation(lo: torch.Tensor, u: torch.Tensor):
    """Slopes/intercepts of the upper line and slope of the lower line of relu on ``[l, u]``."""
    unstable = (lo < 0) & (u > 0)
    active = lo >= 0
    denom = torch.where(unstable, u - lo, torch.ones_like(u))
    up_slope = torch.where(unstable, u / denom, active.to(u.dtype))
    up_icpt = torch.where(unstable, -lo * u / denom, torch.zeros_like(u))
    low_slope = torch.where(unstable, (u >= -lo).to(u.dtype), active.to(u.dtype))
    return up_slope, up_icpt, low_slope


def _concretise(
    a: torch.Tensor, const: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, upper: bool
):
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    if upper:
        return const + (pos @ hi.unsqueeze(-1)).squeeze(-1) + (neg @ lo.unsqueeze(-1)).squeeze(-1)
    return const + (pos @ lo.unsqueeze(-1)).squeeze(-1) + (neg @ hi.unsqueeze(-1)).squeeze(-1)


def linear_bounds(layers: Layers, lo: torch.Tensor, hi: torch.Tensor) -> Bounds:
    """Backward linear (CROWN-style) bounds, intersected with interval bounds layer by layer."""
    boxes = interval_bounds(layers, lo, hi)
    out: Bounds = [boxes[0]]
    for k in range(1, len(layers)):
        w, b = layers[k]
        results = []
        for upper in (True, False):
            a = w.expand(lo.shape[0], *w.shape)
            const = b.expand(lo.shape[0], -1).clone()
            for m in range(k - 1, -1, -1):
                l_m, u_m = out[m]
                us, ui, ls = _relu_relaxation(l_m, u_m)
                pos, neg = a.clamp(min=0), a.clamp(max=0)
                if upper:
                    slope = pos * us.unsqueeze(1) + neg * ls.unsqueeze(1)
                    const = const + (pos @ ui.unsqueeze(-1)).squeeze(-1)
                else:
                    slope = pos * ls.unsqueeze(1) + neg * us.unsqueeze(1)
                    const = const + (neg @ ui.unsqueeze(-1)).squeeze(-1)
                w_m, b_m = layers[m]
                const = const + slope @ b_m
                a = slope @ w_m
            results.append(_concretise(a, const, lo, hi, upper))
        u_k, l_k = results
        il, iu = boxes[k]
        out.append((torch.maximum(l_k, il), torch.minimum(u_k, iu)))
    return out


def layer_bounds(layers: Layers, lo: torch.Tensor, hi: torch.Tensor, method: BoundMethod) -> Bounds:
    with torch.no_grad():
        if method is BoundMethod.INTERVAL:
            return interval_bounds(layers, lo, hi)
        return linear_bounds(layers, lo, hi)


def stability_penalty(layers: Layers, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """ReLU-stability regulariser ``-tanh(1 + u*l)`` summed over hidden units (Xiao et al. 2019).

    Differentiable; interval bounds over the box. Mean over the batch.
    """
    bounds = interval_bounds(layers, lo, hi)[:-1]
    total = sum(-torch.tanh(1 + u * lo_).sum(dim=-1) for lo_, u in bounds)
    return total.mean()
