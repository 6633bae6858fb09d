"""Which ReLU to split: filtered smart branching (FSB, De Palma et al. 2021).

BaBSR's score (the cost of each unstable neuron's upper relaxation in the worst row's bound)
filters a few candidates per domain; each candidate's two children are then bounded with one
back-substitution from the parent's intermediate bounds, slopes and multipliers (no
optimisation: cheap), and the candidate whose worse child is closest to closing wins. The
score alone ranks neurons by how much the relaxation costs, not by how much the split gains;
the children's bounds measure the gain.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import optimize
from .adapter import DTYPE
from .branching import pick_split
from .domains import Domains, cat

#: candidates bounded per domain
CANDIDATES = 4


def babsr_scores(pre, relu_a, splits, worst: Tensor) -> Tensor:
    """(N, total free neurons over layers): the upper relaxation's cost in the worst row's
    bound for each unstable free neuron, 0 elsewhere."""
    idx = torch.arange(worst.shape[0])
    scores = []
    for (low, up), a, s in zip(pre, relu_a, splits, strict=True):
        unstable = (low < 0) & (up > 0) & (s == 0)
        a_row = a[idx, worst]
        width = torch.where(unstable, up - low, torch.ones_like(up))
        cost = a_row.clamp(max=0).abs() * (-low * up / width)
        scores.append(torch.where(unstable, cost + 1e-9 * (up - low), torch.zeros_like(up)))
    return torch.cat(scores, 1)


def _with_split(splits, offsets, neuron: Tensor, rows: Tensor, sign: int):
    """Copies of `splits` with `neuron` (flat index over layers) fixed to `sign` on `rows`."""
    out = [s.clone() for s in splits]
    for layer in range(len(out)):
        inside = rows & (neuron >= offsets[layer]) & (neuron < offsets[layer + 1])
        r = torch.nonzero(inside).flatten()
        out[layer][r, neuron[r] - int(offsets[layer])] = sign
    return out


def fsb_split(
    net, problem, c: Tensor, batch: Domains, relu_a, worst: Tensor
) -> tuple[Domains, Tensor]:
    """Two children per domain fixing its best candidate ReLU active / inactive; returns them
    and (N,) whether a ReLU was split (False: none unstable and free). `batch` carries its
    bounds' intermediate boxes, slopes and multipliers (`Domains.pre`, ...); `relu_a` (per
    layer (N, S, n_l)) are its bounds' coefficients on the ReLU outputs, `worst` (N,) the row
    to score against."""
    n = len(batch)
    scores = babsr_scores(batch.pre, relu_a, batch.splits, worst)
    k = min(CANDIDATES, scores.shape[1])
    top_s, top = torch.topk(scores, k, dim=1)  # (N, k)
    valid = top_s > 0
    used = valid[:, 0]
    offsets = np.cumsum([0, *[s.shape[1] for s in batch.splits]])
    if k > 1 and bool(valid[:, 1].any()):
        rep = batch.select(torch.arange(n).repeat_interleave(2 * k))
        neuron = top.repeat_interleave(2, 1).reshape(-1)  # (N*k*2,)
        sign = torch.tensor([1, -1]).repeat(n * k)
        splits = list(rep.splits)
        for sg in (1, -1):
            rows = sign == sg
            splits = _with_split(splits, offsets, neuron, rows, sg)
        row = worst.repeat_interleave(2 * k)
        lower, empty = _evaluate(net, c, rep, tuple(splits), row)
        gap = lower - torch.from_numpy(problem.s).to(DTYPE)[row]
        margins = torch.where(empty, torch.inf, gap.clamp(max=0)).reshape(n, k, 2)
        margins = torch.where(valid[..., None], margins, torch.tensor(-torch.inf, dtype=DTYPE))
        choice = pick_split(margins)
    else:
        choice = torch.zeros(n, dtype=torch.long)
    best = top[torch.arange(n), choice]
    a, b = batch.select(slice(None)), batch.select(slice(None))
    a.splits = tuple(_with_split(batch.splits, offsets, best, used, 1))
    b.splits = tuple(_with_split(batch.splits, offsets, best, used, -1))
    out = cat([a, b])
    out.depth = out.depth + 1
    out.margin = torch.full_like(out.margin, -torch.inf)
    return out, used


def _evaluate(net, c: Tensor, rep: Domains, splits, row: Tensor) -> tuple[Tensor, Tensor]:
    """Lower bounds (M,) of row `row` (M,) of the candidate children with the parent's slopes
    and multipliers (sound: any slopes and non-negative multipliers are)."""
    with torch.no_grad():
        inputs, trace, pre, empty, box = net.prepare(rep.lo, rep.hi, splits, rep.pre)
        m = rep.lo.shape[0]
        spec = c.to(DTYPE)[row].reshape(m, 1, *box.centre.shape[1:])
        signs = tuple(sp.to(DTYPE) for sp in splits)
        alphas = _row(rep.alphas, row)
        betas = _row(rep.betas, row)
        res = optimize.backward(net.ops, inputs, spec, trace, alphas, betas, signs)
    return res.lower[:, 0], empty


def _row(layers, row: Tensor):
    if layers is None:
        return None
    idx = torch.arange(row.shape[0])
    return tuple(t[idx, row][:, None].to(DTYPE) for t in layers)
