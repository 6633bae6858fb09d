"""Input splitting on a `ReluChain` (ACAS Xu-shaped networks): bounding by the lean chain
engine under the search's clock, strong branching (`pick_input_split`), and the exact
decision of boxes on which the network is affine.

Exact leaves. When no ReLU is unstable on a box, `y` is affine there and the chain's CROWN
rows are that map exactly, so a term of the negation with one atom is refuted or violated at
the row's minimising corner, and a conjunction of atoms is a linear program over the box
(HiGHS, rows loosened by `leaf.SLACK`, so "infeasible" holds with room to spare). Splitting
such a box further could never close it where the LP does not.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import Tensor

from . import leaf
from .branching import bisect, input_candidates
from .chain import ChainBounds, ReluChain
from .domains import Domains, term_margins, worst_rows
from .problem import Problem


def pick_input_split(child_margin: Tensor) -> Tensor:
    """(N,) the candidate whose children are together closest to closing: the sum of their
    margins (closed children count as 0). Judging a split by its worse child alone (as
    `branching.pick_split` does for ReLU splits) degenerates on input boxes: the worse child
    holds the bound's worst point whatever the split, so the rule keeps shaving dimensions
    that move it slightly (ACAS Xu 4_3 property 1: depth 48 and 23,471 domains open at 150 s,
    where the sum closes it in 541 domains)."""
    m = torch.nan_to_num(child_margin.clamp(max=0), nan=-torch.inf)
    return torch.nan_to_num(m.sum(2), nan=-torch.inf).argmax(1)


def exact_decide(
    problem: Problem, b: ChainBounds, lo: Tensor, hi: Tensor, open_terms: Tensor
) -> tuple[Tensor, list[np.ndarray]]:
    """For boxes with every ReLU stable: which open terms are infeasible (N, T) bool, and a
    candidate counterexample per feasible term (to confirm on the original)."""
    closed = torch.zeros_like(open_terms)
    points: list[np.ndarray] = []
    a_in, bias = b.a_in.numpy(), b.bias.numpy()
    for i, t in torch.nonzero(open_terms).tolist():
        rows = np.flatnonzero(problem.member[t])
        if len(rows) == 1:  # the bound is the exact minimum: refuted already, or attained
            r = rows[0]
            points.append(np.where(a_in[i, r] > 0, lo[i].numpy(), hi[i].numpy()))
            continue
        ok, x = affine_point(
            a_in[i, rows], bias[i, rows], problem.s[rows], lo[i].numpy(), hi[i].numpy()
        )
        if not ok:
            closed[i, t] = True
        elif x is not None:
            points.append(x)
    return closed, points


#: open input-split domains this deep are bounded again by alpha-CROWN with optimised
#: intermediate bounds (`ChainSplit.optimise`): steps, and domains per engine call
ALPHA_DEPTH, ALPHA_STEPS, ALPHA_CHUNK = 10, 20, 4
#: after this many domains tried at a depth, alpha must have closed this share of them (it
#: costs ~30 chain bounds), else the depth it starts at goes up by 2
ALPHA_TRIAL, ALPHA_PAYS = 16, 0.5
#: boxes with at most this many unstable ReLUs are decided exactly, one LP per phase pattern
#: of those ReLUs and open term (2^k patterns), instead of being split further
FEW_UNSTABLE = 3


def few_unstable_decide(
    chain: ReluChain,
    problem: Problem,
    pre: tuple[tuple[Tensor, Tensor], ...],
    lo: np.ndarray,
    hi: np.ndarray,
    open_terms: np.ndarray,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """One box with few unstable ReLUs (`pre`: its bounds per layer, each (n_l,)): each phase
    pattern of the unstable ones makes the network affine on a polytope (the box and the
    pattern's sign rows; the stable ReLUs keep their sign on the whole box), so a term is
    infeasible on the box iff its LP is infeasible under every pattern (nnenum's exact step).
    Returns which open terms are infeasible (T,) and the points of the feasible LPs."""
    phases = [torch.where(low >= 0, 1, -1).to(torch.int8) for low, _ in pre]
    unstable = [(low < 0) & (up > 0) for low, up in pre]
    where = [(layer, int(j)) for layer, u in enumerate(unstable) for j in torch.nonzero(u)]
    sizes = np.cumsum([0, *[len(p) for p in phases]])
    feasible = np.zeros(problem.terms, dtype=bool)
    points: list[np.ndarray] = []
    for pattern in range(1 << len(where)):
        signs = [p.clone() for p in phases]
        rows = np.zeros(int(sizes[-1]), dtype=np.int8)
        for bit, (layer, j) in enumerate(where):
            sign = 1 if (pattern >> bit) & 1 else -1
            signs[layer][j] = sign
            rows[sizes[layer] + j] = sign
        a, c = chain.pieces(tuple(s > 0 for s in signs))
        a, c = a.numpy(), c.numpy()
        for t in np.flatnonzero(open_terms & ~feasible):
            atoms = problem.member[t]
            ok, x = leaf.feasible_point(a, c, rows, lo, hi, problem.g[atoms], problem.s[atoms])
            if ok:
                feasible[t] = True
                if x is not None:
                    points.append(x)
        if not (open_terms & ~feasible).any():
            break
    return open_terms & ~feasible, points


def affine_point(
    a: np.ndarray, c: np.ndarray, s: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[bool, np.ndarray | None]:
    """Is there x in [lo, hi] with `a @ x + c <= s` (every row loosened by `leaf.SLACK`)?
    (feasible, a point); (True, None) when the solver says neither."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    d = len(lo)
    for i in range(d):
        h.addVar(float(lo[i]), float(hi[i]))
    idx = np.arange(d, dtype=np.int32)
    for row, const, rhs in zip(a, c, s, strict=True):
        bound = rhs - const + leaf.SLACK * max(1.0, abs(rhs))
        h.addRow(-highspy.kHighsInf, float(bound), d, idx, row.astype(np.float64))
    return leaf.solve_feasibility(h, d)


class ChainSplit:
    """The input-split steps of a search over a `ReluChain`: bounding under the search's
    clock, closing, exact leaves, branching. `search` is the running `search._Search` (its
    clock, its counterexample checks, its counters)."""

    def __init__(self, search, chain: ReluChain) -> None:
        self.search, self.chain = search, chain
        self.alpha_depth, self.alpha_tries, self.alpha_closed = ALPHA_DEPTH, 0, 0
        self.alpha_call = 0.0  # seconds of the last alpha call (decaying max)
        self.problem = search.problem
        self.c = search.c

    def bound(self, lo: Tensor, hi: Tensor) -> ChainBounds:
        """Bounds for all rows, in calls cut to the time left (raises `OutOfTime`)."""
        s, parts, at = self.search, [], 0
        while at < lo.shape[0]:
            k = s.clock.rows_allowed(lo.shape[0] - at)
            t0 = time.monotonic()
            parts.append(self.chain.bound(lo[at : at + k], hi[at : at + k], self.c))
            s.clock.measured(k, time.monotonic() - t0)
            s.domains += k
            at += k
        return parts[0] if len(parts) == 1 else _cat(parts)

    def close(self, batch: Domains, b: ChainBounds) -> Domains:
        """Record the bounds on the domains, decide the affine ones exactly, drop the closed."""
        problem = self.problem
        still = batch.open & ~problem.closed_terms(b.lower)
        unstable = sum(((low < 0) & (up > 0)).sum(1) for low, up in b.pre)
        few = (unstable > 0) & (unstable <= FEW_UNSTABLE) & still.any(1)
        for i in torch.nonzero(few).flatten().tolist():
            if self.search.clock.left() <= 0:
                break
            closed, points = few_unstable_decide(
                self.chain,
                problem,
                tuple((low[i], up[i]) for low, up in b.pre),
                batch.lo[i].numpy(),
                batch.hi[i].numpy(),
                still[i].numpy(),
            )
            still[i] &= ~torch.from_numpy(closed)
            if points:
                self.search.check(torch.from_numpy(np.stack(points)))
        exact = b.stable & still.any(1)
        if bool(exact.any()):
            rows = torch.nonzero(exact).flatten()
            closed, points = exact_decide(
                problem, _rows(b, rows), batch.lo[rows], batch.hi[rows], still[rows]
            )
            still[rows] &= ~closed
            if points:
                self.search.check(torch.from_numpy(np.stack(points)))
        keep = still.any(1)
        batch, b = batch.select(keep), _rows(b, keep)
        batch.open = still[keep]
        margins = term_margins(problem, b.lower, batch.open)
        batch.margin, batch.term = margins.min(1)
        worst = worst_rows(problem, b.lower, batch.open)
        batch.a_worst = b.a_in[torch.arange(len(batch)), worst]
        batch.fixed = b.stable
        return batch

    def root(self, root: Domains) -> Domains:
        return self.close(root, self.bound(root.lo, root.hi))

    def step(self, batch: Domains) -> Domains:
        """Bounded open domains in: the open children of their splits out."""
        self.search.candidates(batch)
        n, d = len(batch), batch.lo.shape[1]
        dims = input_candidates(batch, min(d, self.search.opts.split_candidates))
        k = dims.shape[1]
        lo, hi = bisect(batch, dims)  # (n, k, 2, d)
        b = self.bound(lo.reshape(-1, d), hi.reshape(-1, d))
        if k > 1:
            parent_open = batch.open.repeat_interleave(2 * k, 0)
            still = parent_open & ~self.problem.closed_terms(b.lower)
            margins = term_margins(self.problem, b.lower, still).amin(1)
            choice = pick_input_split(margins.reshape(n, k, 2))
            flat = ((torch.arange(n) * k + choice)[:, None] * 2 + torch.arange(2)[None]).reshape(-1)
            b = _rows(b, flat)
        else:
            flat = torch.arange(2 * n)
        children = Domains(
            lo.reshape(-1, d)[flat],
            hi.reshape(-1, d)[flat],
            batch.open.repeat_interleave(2, 0),
            tuple(s.repeat_interleave(2, 0) for s in batch.splits),
            batch.depth.repeat_interleave(2) + 1,
            batch.margin.repeat_interleave(2),
            batch.a_worst.repeat_interleave(2, 0),
            batch.fixed.repeat_interleave(2),
            batch.term.repeat_interleave(2),
        )
        children = self.close(children, b)
        children = self.optimise(children)
        # the queue pops from its end: the worst margins last, so they are split first (a
        # violated property's counterexample lies under the worst bounds)
        return children.select(torch.argsort(children.margin, descending=True))

    def optimise(self, batch: Domains) -> Domains:
        """Open domains at depth `ALPHA_DEPTH` or more bounded again by alpha-CROWN with
        optimised intermediate bounds (the general engine, `ALPHA_STEPS` steps), a few at a
        time under the clock; the terms it refutes are closed. Deep open domains are the ones
        CROWN's fixed slopes leave a hair from closing: on ACAS Xu 1_1 property 2 the 16
        worst open at 20 s had margins -0.005 to -0.017 by CROWN and +0.003 by this bound, at
        about 30x a chain bound's cost."""
        deep = torch.nonzero(batch.depth >= self.alpha_depth).flatten()
        if not len(deep):
            return batch
        s, net, still = self.search, self.search.net, batch.open.clone()
        for at in range(0, len(deep), ALPHA_CHUNK):
            if s.clock.left() <= 1.5 * self.alpha_call:  # a call must end before the limit
                break
            rows = deep[at : at + ALPHA_CHUNK]
            t0 = time.monotonic()
            lower = net.bound(
                batch.lo[rows], batch.hi[rows], self.c, None, ALPHA_STEPS, alpha_intermediate=True
            ).lower
            spent = time.monotonic() - t0
            s.alpha_seconds += spent
            self.alpha_call = max(spent, 0.7 * self.alpha_call)
            before = still[rows].any(1)
            still[rows] &= ~self.problem.closed_terms(lower)
            self.alpha_tries += len(rows)
            self.alpha_closed += int((before & ~still[rows].any(1)).sum())
            if (
                self.alpha_tries >= ALPHA_TRIAL
                and self.alpha_closed < ALPHA_PAYS * self.alpha_tries
            ):
                # not paying for itself at this depth: only deeper domains from now on
                self.alpha_depth += 2
                self.alpha_tries = self.alpha_closed = 0
                break
        keep = still.any(1)
        batch = batch.select(keep)
        batch.open = still[keep]
        return batch


def _rows(b: ChainBounds, idx) -> ChainBounds:
    return ChainBounds(
        b.lower[idx],
        b.a_in[idx],
        b.bias[idx],
        tuple((lo[idx], hi[idx]) for lo, hi in b.pre),
        b.stable[idx],
    )


def _cat(parts: list[ChainBounds]) -> ChainBounds:
    return ChainBounds(
        torch.cat([p.lower for p in parts]),
        torch.cat([p.a_in for p in parts]),
        torch.cat([p.bias for p in parts]),
        tuple(
            (torch.cat([p.pre[i][0] for p in parts]), torch.cat([p.pre[i][1] for p in parts]))
            for i in range(len(parts[0].pre))
        ),
        torch.cat([p.stable for p in parts]),
    )
