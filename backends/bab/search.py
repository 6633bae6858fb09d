"""Branch and bound over input boxes and ReLU phases, batched: many domains bounded in one
engine call, PGD first (and cheap vertex checks on every open domain) for counterexamples.

A domain is closed when every term of the property's negation is ruled out on it by the bound;
the property holds when no domain is left open. A point whose outputs violate the property in
our float64 copy is confirmed on the original model before it is reported; one the original
does not confirm is noted and the search goes on. Input splitting bisects the dimension with
the largest |coefficient| x width (the bound's "smear"); ReLU splitting fixes the unstable
neuron whose relaxation costs the bound most (BaBSR-style); a domain with no unstable ReLU left
falls back to input splitting, so the search stays complete.
"""

from __future__ import annotations

import time

import attrs
import numpy as np
import torch
from torch import Tensor

from . import leaf
from .adapter import DTYPE, EngineNet
from .config import BabOptions
from .confirm import Original, confirm
from .problem import Problem


@attrs.frozen
class Outcome:
    verdict: str  # holds | violated | unknown
    reason: str | None = None
    timed_out: bool = False
    counterexample: dict | None = None
    domains: int = 0  # domains bounded
    depth: int = 0  # deepest split
    bound_alone: str = "unknown"  # the root bound without branching: holds | unknown
    seconds: float = 0.0
    unconfirmed: int = 0  # points violating in our copy that the original did not confirm


def attack(net: EngineNet, problem: Problem, lo: Tensor, hi: Tensor, opts: BabOptions, gen):
    """PGD on the property's slack inside [lo, hi] (d,): (best points (R, d), their slack)."""
    d = lo.numel()
    r = opts.pgd_restarts
    x = lo + (hi - lo) * torch.rand(r, d, generator=gen, dtype=DTYPE)
    x[0] = (lo + hi) / 2
    width = hi - lo
    best_x, best = x.clone(), torch.full((r,), torch.inf, dtype=DTYPE)
    for step in range(opts.pgd_steps):
        x.requires_grad_(True)
        slack = problem.slack(net(x))
        better = slack.detach() < best
        best_x[better], best[better] = x.detach()[better], slack.detach()[better]
        (grad,) = torch.autograd.grad(slack.sum(), x)
        size = 0.25 * (1 - step / opts.pgd_steps) + 0.01
        with torch.no_grad():
            x = torch.minimum(torch.maximum(x - size * width * grad.sign(), lo), hi)
    return best_x, best


def _check_points(net, problem, original, points: Tensor, lo: np.ndarray, hi: np.ndarray):
    """(confirmed counterexample or None, how many our copy flagged but the original did not)."""
    with torch.no_grad():
        y = net(points).numpy()
    flagged = np.flatnonzero(problem.violated(y))
    missed = 0
    for i in flagged:
        found = confirm(original, problem, points[i].numpy(), lo, hi)
        if found is not None:
            return found, missed
        missed += 1
    return None, missed


def solve(
    net: EngineNet,
    problem: Problem,
    original: Original,
    lo: np.ndarray,
    hi: np.ndarray,
    opts: BabOptions,
    seed: int = 0,
) -> Outcome:
    """The verdict for the box [lo, hi] (flat, float64)."""
    start = time.monotonic()
    deadline = start + opts.time_limit
    gen = torch.Generator().manual_seed(seed)
    lo_t, hi_t = torch.from_numpy(lo).to(DTYPE), torch.from_numpy(hi).to(DTYPE)
    c = problem.c()
    stats = {"domains": 1, "depth": 0, "unconfirmed": 0}

    def done(verdict, reason=None, timed_out=False, cex=None, alone="unknown"):
        return Outcome(
            verdict,
            reason,
            timed_out,
            cex,
            stats["domains"],
            stats["depth"],
            alone,
            time.monotonic() - start,
            stats["unconfirmed"],
        )

    def found(cex):
        x, y = cex
        return {"input": x.astype(np.float64).tolist(), "outputs": y.tolist()}

    root = net.bound(lo_t[None], hi_t[None], c)
    open_terms = ~problem.closed_terms(root.lower)
    alone = "holds" if not bool(open_terms.any()) else "unknown"
    if alone == "holds":
        return done("holds", alone=alone)
    if opts.pgd_steps > 0 and opts.pgd_restarts > 0:
        points, _ = attack(net, problem, lo_t, hi_t, opts, gen)
        cex, missed = _check_points(net, problem, original, points, lo, hi)
        stats["unconfirmed"] += missed
        if cex is not None:
            return done("violated", cex=found(cex), alone=alone)

    relu_mode = opts.branching == "relu" or (
        opts.branching == "auto" and net.dims > opts.input_split_max_dims
    )
    queue = _Domains.root(lo_t, hi_t, open_terms, net.relu_sizes)
    use_lp = leaf.available()
    while len(queue):
        if time.monotonic() > deadline:
            reason = f"time limit {opts.time_limit:g}s reached with {len(queue)} domains open"
            if stats["unconfirmed"]:
                reason += (
                    f"; {stats['unconfirmed']} point(s) violated the property in our float64 "
                    f"copy but not on {original.name}"
                )
            return done("unknown", reason, timed_out=True, alone=alone)
        if len(queue) > opts.max_domains:
            reason = f"more than {opts.max_domains} open domains (raise max_domains)"
            return done("unknown", reason, alone=alone)
        batch = queue.pop(opts.batch)
        b = net.bound(batch.lo, batch.hi, c, batch.splits)
        stats["domains"] += len(batch)
        still = batch.open & ~problem.closed_terms(b.lower)
        keep = still.any(1) & ~b.empty
        if not bool(keep.any()):
            continue
        batch, b, still = batch.select(keep), _select(b, keep), still[keep]
        batch.open = still
        # cheap counterexample candidates: each box's centre and the vertex minimising the
        # worst open row's linear bound
        worst = _worst_rows(problem, b.lower, still)
        a = b.a_in[torch.arange(len(batch)), worst]
        vertex = torch.where(a > 0, batch.lo, batch.hi)
        points = torch.cat([(batch.lo + batch.hi) / 2, vertex])
        cex, missed = _check_points(net, problem, original, points, lo, hi)
        stats["unconfirmed"] += missed
        if cex is not None:
            return done("violated", cex=found(cex), alone=alone)
        if use_lp:
            batch, b, worst, cex, missed = _decide_leaves(
                net, problem, original, batch, b, worst, lo, hi
            )
            stats["unconfirmed"] += missed
            if cex is not None:
                return done("violated", cex=found(cex), alone=alone)
            if not len(batch):
                continue
        children = _branch(batch, b, worst, relu_mode)
        stats["depth"] = max(stats["depth"], int(children.depth.max()))
        queue.push(children)
    return done("holds", alone=alone)


def _decide_leaves(net, problem, original, batch, b, worst, lo, hi):
    """Decide domains with no unstable ReLU left exactly (an LP per open term); returns the
    batch without the closed ones, and a confirmed counterexample if an LP found one."""
    phases = [
        torch.where(s != 0, s, torch.where(low >= 0, 1, -1).to(torch.int8))
        for (low, up), s in zip(b.pre, batch.splits, strict=True)
    ]
    unstable = torch.zeros(len(batch), dtype=torch.bool)
    for (low, up), s in zip(b.pre, batch.splits, strict=True):
        unstable |= ((low < 0) & (up > 0) & (s == 0)).any(1)
    keep = torch.ones(len(batch), dtype=torch.bool)
    missed = 0
    for i in torch.nonzero(~unstable).flatten().tolist():
        ph = [p[i].numpy() for p in phases]
        closed, points = leaf.decide(
            net,
            problem,
            [(p > 0).astype(np.float64) for p in ph],
            np.concatenate(ph) if ph else np.zeros(0),
            batch.lo[i].numpy(),
            batch.hi[i].numpy(),
            batch.open[i].numpy(),
        )
        batch.open[i] &= ~torch.from_numpy(closed)
        if points:
            cex, m = _check_points(
                net, problem, original, torch.from_numpy(np.stack(points)), lo, hi
            )
            missed += m
            if cex is not None:
                return batch, b, worst, cex, missed
        keep[i] = bool(batch.open[i].any())
    if bool(keep.all()):
        return batch, b, worst, None, missed
    return batch.select(keep), _select(b, keep), worst[keep], None, missed


def _select(b, keep):
    return attrs.evolve(
        b,
        lower=b.lower[keep],
        a_in=b.a_in[keep],
        pre=tuple((lo[keep], hi[keep]) for lo, hi in b.pre),
        relu_a=tuple(a[keep] for a in b.relu_a),
        empty=b.empty[keep],
    )


def _worst_rows(problem: Problem, lower: Tensor, open_terms: Tensor) -> Tensor:
    """Per domain, the atom row of an open term whose bound is furthest from refuting it."""
    member = torch.from_numpy(problem.member)
    rows_open = (open_terms.to(torch.float64) @ member.to(torch.float64)) > 0  # (N, S)
    gap = lower - torch.from_numpy(problem.s)  # < 0: not refuted yet
    gap = torch.where(rows_open, gap, torch.tensor(torch.inf, dtype=gap.dtype))
    return gap.argmin(1)


@attrs.define
class _Domains:
    lo: Tensor
    hi: Tensor
    open: Tensor  # (N, T) bool: terms not yet ruled out
    splits: tuple[Tensor, ...]  # per ReLU layer (N, n_l) int8
    depth: Tensor

    @classmethod
    def root(cls, lo, hi, open_terms, sizes):
        splits = tuple(torch.zeros(1, n, dtype=torch.int8) for n in sizes)
        return cls(lo[None], hi[None], open_terms, splits, torch.zeros(1, dtype=torch.long))

    def __len__(self) -> int:
        return self.lo.shape[0]

    def select(self, idx) -> _Domains:
        return _Domains(
            self.lo[idx],
            self.hi[idx],
            self.open[idx],
            tuple(s[idx] for s in self.splits),
            self.depth[idx],
        )

    def pop(self, n: int) -> _Domains:
        """The last `n` domains (depth first keeps the queue small)."""
        k = max(len(self) - n, 0)
        out = self.select(slice(k, None))
        rest = self.select(slice(0, k))
        self.lo, self.hi, self.open, self.splits, self.depth = (
            rest.lo,
            rest.hi,
            rest.open,
            rest.splits,
            rest.depth,
        )
        return out

    def push(self, other: _Domains) -> None:
        self.lo = torch.cat([self.lo, other.lo])
        self.hi = torch.cat([self.hi, other.hi])
        self.open = torch.cat([self.open, other.open])
        self.splits = tuple(
            torch.cat([a, b]) for a, b in zip(self.splits, other.splits, strict=True)
        )
        self.depth = torch.cat([self.depth, other.depth])


def _branch(batch: _Domains, b, worst: Tensor, relu_mode: bool) -> _Domains:
    """Two children per domain: a ReLU split where one pays off, else an input bisection."""
    n = len(batch)
    idx = torch.arange(n)
    lo_a, hi_a, lo_b, hi_b = batch.lo.clone(), batch.hi.clone(), batch.lo.clone(), batch.hi.clone()
    splits_a = [s.clone() for s in batch.splits]
    splits_b = [s.clone() for s in batch.splits]
    use_relu = torch.zeros(n, dtype=torch.bool)
    if relu_mode and b.pre:
        scores = []
        for (low, up), a, s in zip(b.pre, b.relu_a, batch.splits, strict=True):
            unstable = (low < 0) & (up > 0) & (s == 0)
            a_row = a[idx, worst]  # (N, n_l)
            width = torch.where(unstable, up - low, torch.ones_like(up))
            cost = a_row.clamp(max=0).abs() * (-low * up / width)  # the upper relaxation's cost
            score = torch.where(unstable, cost + 1e-9 * (up - low), torch.zeros_like(up))
            scores.append(score)
        flat = torch.cat(scores, 1)
        best = flat.argmax(1)
        use_relu = flat[idx, best] > 0
        offsets = np.cumsum([0, *[s.shape[1] for s in scores]])
        for layer in range(len(scores)):
            in_layer = use_relu & (best >= offsets[layer]) & (best < offsets[layer + 1])
            rows = idx[in_layer]
            cols = best[in_layer] - int(offsets[layer])
            splits_a[layer][rows, cols] = 1
            splits_b[layer][rows, cols] = -1
    # input bisection for the rest: the dimension with the largest smear
    a = b.a_in[idx, worst]
    width = batch.hi - batch.lo
    smear = a.abs() * width
    smear = torch.where(smear.sum(1, keepdim=True) > 0, smear, width)
    dim = smear.argmax(1)
    mid = (batch.lo[idx, dim] + batch.hi[idx, dim]) / 2
    rows = idx[~use_relu]
    hi_a[rows, dim[rows]] = mid[rows]
    lo_b[rows, dim[rows]] = mid[rows]
    depth = batch.depth + 1
    return _Domains(
        torch.cat([lo_a, lo_b]),
        torch.cat([hi_a, hi_b]),
        torch.cat([batch.open, batch.open]),
        tuple(torch.cat([x, y]) for x, y in zip(splits_a, splits_b, strict=True)),
        torch.cat([depth, depth]),
    )
