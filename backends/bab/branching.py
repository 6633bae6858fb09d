"""How a domain is split in two.

Input splitting is strong branching: for each domain the candidate dimensions (all of them for
small inputs, else those with the largest |coefficient| x width, the bound's "smear") are each
bisected, every child is bounded in the same engine call, and the dimension whose worse child
is closest to being closed wins. Smear alone degenerates: it ranks dimensions by how much the
*current* linear bound depends on them, not by how much splitting them tightens the
relaxation, and on ACAS Xu property 1 it cut four dimensions to 1e-5 while the fifth stayed at
0.25. Bounding the children is what alpha-beta-CROWN's input split estimates; here it is
measured, and the children's bounds are kept, so no work is lost.

ReLU splitting fixes the unstable neuron whose triangle relaxation costs the worst row's bound
most (BaBSR-style).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .domains import Domains


def input_candidates(batch: Domains, k: int) -> Tensor:
    """(N, k) dimensions to try per domain: the largest smear, width breaking ties (and
    standing in when the bound does not depend on the input at all)."""
    width = batch.hi - batch.lo
    smear = batch.a_worst.abs() * width
    score = smear / smear.amax(1, keepdim=True).clamp(min=1e-300) + 1e-6 * width / width.amax(
        1, keepdim=True
    ).clamp(min=1e-300)
    score = torch.where(width > 0, score, torch.full_like(score, -1.0))
    return torch.topk(score, min(k, width.shape[1]), dim=1).indices


def bisect(batch: Domains, dims: Tensor) -> tuple[Tensor, Tensor]:
    """Children boxes (lo, hi), each (N, k, 2, d): for domain n and candidate j, the lower and
    the upper half along `dims[n, j]`."""
    n, k = dims.shape
    lo = batch.lo[:, None, None, :].expand(n, k, 2, -1).clone()
    hi = batch.hi[:, None, None, :].expand(n, k, 2, -1).clone()
    rows = torch.arange(n)[:, None].expand(n, k)
    cols = torch.arange(k)[None].expand(n, k)
    mid = (batch.lo[rows, dims] + batch.hi[rows, dims]) / 2
    hi[rows, cols, 0, dims] = mid
    lo[rows, cols, 1, dims] = mid
    return lo, hi


def pick_split(child_margin: Tensor) -> Tensor:
    """(N,) the candidate whose worse child is closest to closing; `child_margin` (N, k, 2)
    with margins <= 0 open (closed children count as 0)."""
    m = torch.nan_to_num(child_margin.clamp(max=0), nan=-torch.inf)
    score = m.amin(2) + 1e-3 * m.sum(2)
    return torch.nan_to_num(score, nan=-torch.inf).argmax(1)


def relu_split(batch: Domains, pre, relu_a, worst: Tensor) -> tuple[Domains, Tensor]:
    """Two children per domain fixing its costliest unstable ReLU active / inactive; returns
    them and (N,) whether a ReLU was split (False: no unstable ReLU is left, the caller
    bisects the input instead)."""
    n = len(batch)
    idx = torch.arange(n)
    scores = []
    for (low, up), a, s in zip(pre, relu_a, batch.splits, strict=True):
        unstable = (low < 0) & (up > 0) & (s == 0)
        a_row = a[idx, worst]  # (N, n_l)
        width = torch.where(unstable, up - low, torch.ones_like(up))
        cost = a_row.clamp(max=0).abs() * (-low * up / width)  # the upper relaxation's cost
        scores.append(torch.where(unstable, cost + 1e-9 * (up - low), torch.zeros_like(up)))
    flat = torch.cat(scores, 1)
    best = flat.argmax(1)
    used = flat[idx, best] > 0
    offsets = np.cumsum([0, *[s.shape[1] for s in scores]])
    splits_a = [s.clone() for s in batch.splits]
    splits_b = [s.clone() for s in batch.splits]
    for layer in range(len(scores)):
        in_layer = used & (best >= offsets[layer]) & (best < offsets[layer + 1])
        rows = idx[in_layer]
        cols = best[in_layer] - int(offsets[layer])
        splits_a[layer][rows, cols] = 1
        splits_b[layer][rows, cols] = -1
    a, b = batch.select(slice(None)), batch.select(slice(None))
    a.splits, b.splits = tuple(splits_a), tuple(splits_b)
    return _pair(a, b), used


def widest_split(batch: Domains) -> Domains:
    """Two children per domain bisecting its dimension of largest smear (the fallback for
    domains with every ReLU fixed whose exact check stayed undecided)."""
    dims = input_candidates(batch, 1)
    lo, hi = bisect(batch, dims)
    a, b = batch.select(slice(None)), batch.select(slice(None))
    a.lo, a.hi = lo[:, 0, 0], hi[:, 0, 0]
    b.lo, b.hi = lo[:, 0, 1], hi[:, 0, 1]
    return _pair(a, b)


def _pair(a: Domains, b: Domains) -> Domains:
    from .domains import cat

    out = cat([a, b])
    out.depth = out.depth + 1
    out.margin = torch.full_like(out.margin, -torch.inf)
    return out
