"""Sparsemax: the Euclidean projection onto the probability simplex (Martins & Astudillo, 2016).

Unlike softmax it is piecewise linear, so a MIP can represent it exactly through its KKT
conditions (dissertation eq. 4.6). Forward: sort, find the support size, subtract the threshold
``tau``. Backward: on the support ``S`` the Jacobian is ``I - 1 1^T / |S|``; off it, zero.

An auction's allocation is a choice among ``agents + 1`` entries per item (2 or 3 here), where a
sort is mostly overhead: ``tau = max over non-empty subsets S of (sum_S x - 1) / |S|`` (every
subset's value is at most ``tau``, the support's equals it), a handful of elementwise maxima
whose autograd gradient is the exact Jacobian above (``dtau/dx = 1_S / |S|`` on the support).
The best subset of each size is the top-k entries, so for up to 3 entries ``tau`` is the max
of ``max - 1``, ``(sum - min - 1) / 2`` and ``(sum - 1) / 3``: five reductions and no subsets.
"""

from __future__ import annotations

import itertools

import torch


def sparsemax_threshold(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """The threshold ``tau`` with ``sparsemax(x) = max(x - tau, 0)`` (keepdim along ``dim``)."""
    z, _ = torch.sort(x, dim=dim, descending=True)
    k = torch.arange(1, x.shape[dim] + 1, device=x.device, dtype=x.dtype)
    shape = [1] * x.dim()
    shape[dim] = -1
    k = k.view(shape)
    cumsum = z.cumsum(dim) - 1.0
    support = (k * z > cumsum).to(x.dtype)
    k_max = support.sum(dim=dim, keepdim=True)
    tau = cumsum.gather(dim, (k_max - 1).long()) / k_max
    return tau


class _Sparsemax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int) -> torch.Tensor:  # type: ignore[override]
        out = torch.clamp(x - sparsemax_threshold(x, dim), min=0.0)
        ctx.save_for_backward(out)
        ctx.dim = dim
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        dim = ctx.dim
        support = (out > 0).to(grad.dtype)
        size = support.sum(dim=dim, keepdim=True)
        mean = (grad * support).sum(dim=dim, keepdim=True) / size
        return support * (grad - mean), None


#: up to this many entries the subset form is used (2^K - 1 candidate thresholds)
SUBSET_MAX_ENTRIES = 4


def subset_threshold(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``tau`` as the largest ``(sum_S x - 1) / |S|`` over non-empty subsets (keepdim)."""
    parts = x.unbind(dim)
    cands = []
    for size in range(1, len(parts) + 1):
        for subset in itertools.combinations(parts, size):
            total = subset[0] if size == 1 else sum(subset[1:], subset[0])
            cands.append((total - 1.0) / size)
    tau = cands[0]
    for c in cands[1:]:
        tau = torch.maximum(tau, c)
    return tau.unsqueeze(dim)


def top_threshold(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``tau`` for at most 3 entries, from the sums of the top 1, 2 and 3 entries (keepdim)."""
    k = x.shape[dim]
    top = x.amax(dim=dim, keepdim=True)
    tau = top - 1.0
    if k == 1:
        return tau
    total = x.sum(dim=dim, keepdim=True)
    if k == 2:
        return torch.maximum(tau, (total - 1.0) * 0.5)
    top2 = total - x.amin(dim=dim, keepdim=True)
    return torch.maximum(torch.maximum(tau, (top2 - 1.0) * 0.5), (total - 1.0) * (1.0 / 3.0))


def sparsemax_sorted(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Sort-based sparsemax with the hand-written backward (any number of entries)."""
    return _Sparsemax.apply(x, dim)


def sparsemax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Project ``x`` onto the simplex along ``dim``; differentiable with the exact Jacobian.

    >>> sparsemax(torch.tensor([0.5, 0.2, -1.0]))
    tensor([0.6500, 0.3500, 0.0000])
    """
    if x.shape[dim] <= 3:
        return torch.clamp(x - top_threshold(x, dim), min=0.0)
    if x.shape[dim] <= SUBSET_MAX_ENTRIES:
        return torch.clamp(x - subset_threshold(x, dim), min=0.0)
    return _Sparsemax.apply(x, dim)
