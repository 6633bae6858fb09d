"""Branch and bound over input boxes and ReLU phases, batched: many domains bounded in one
engine call, attacks first and throughout for counterexamples.

A domain is closed when every term of the property's negation is ruled out on it by the bound;
the property holds when no domain is left open. A point whose outputs violate the property in
our float64 copy is confirmed on the original model before it is reported; one the original
does not confirm is noted and the search goes on. Low-dimensional inputs are split by strong
branching (`branching.py`), others by ReLU phase, with exact LPs (`leaf.py`) on domains whose
ReLUs are all fixed, so the search stays complete.

The time limit is a hard deadline: it is checked before every engine call, and a call is cut
to the rows the remaining time allows (measured per row), so a run ends within about a second
of its limit, whatever the batch.
"""

from __future__ import annotations

import time

import attrs
import numpy as np
import torch
from torch import Tensor

from . import attack, input_split, leaf, relu_bab
from .adapter import DTYPE, Bounds, EngineNet
from .branching import bisect, input_candidates, pick_split, widest_split
from .chain import ReluChain
from .config import BabOptions
from .confirm import Original, confirm
from .domains import Domains, cat, fixed_phases, term_margins, worst_rows
from .problem import NumericalTrouble, Problem
from .relu_branching import fsb_split

#: attacks inside open domains may take this share of the time spent so far
ATTACK_SHARE = 0.15
#: the one wide attack of input splitting: after this many domains bounded, restarts, steps
WIDE_AFTER, WIDE_RESTARTS, WIDE_STEPS = 2000, 1024, 100
#: open domains attacked in one round, and PGD steps in each
DOMAIN_ATTACKS, DOMAIN_STEPS = 16, 10


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
    attack_seconds: float = 0.0  # time spent looking for counterexamples (PGD, candidates)


class _OutOfTime(Exception):
    pass


class _Found(Exception):
    def __init__(self, cex) -> None:
        self.cex = cex


@attrs.define
class _Clock:
    """The deadline, and the measured engine time per bounded row (to size calls)."""

    deadline: float
    per_row: float = 0.0
    attack: float = 0.0

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def rows_allowed(self, wanted: int) -> int:
        left = self.left()
        if left <= 0:
            raise _OutOfTime
        if self.per_row <= 0:
            return min(wanted, 8)  # a first, small call to measure
        return max(1, min(wanted, int(left / self.per_row)))

    def measured(self, rows: int, seconds: float) -> None:
        sample = seconds / max(rows, 1)
        self.per_row = sample if self.per_row <= 0 else 0.7 * self.per_row + 0.3 * sample


class _Search:
    def __init__(self, net, problem, original, lo, hi, opts, seed) -> None:
        self.net, self.problem, self.original, self.opts = net, problem, original, opts
        self.lo, self.hi = lo, hi  # the whole box, numpy float64 (for confirmation)
        self.start = time.monotonic()
        self.clock = _Clock(self.start + opts.time_limit)
        self.gen = torch.Generator().manual_seed(seed)
        self.c = problem.c()
        self.domains = 0
        self.depth = 0
        self.unconfirmed = 0
        self.use_lp = leaf.available()
        self.wide_done = False
        self.alpha_seconds = 0.0  # input splitting: alpha-CROWN on deep domains
        #: input splitting on a chain of affine maps and ReLUs: the lean engine (`chain.py`)
        self.splitter = None
        relu_mode = opts.branching == "relu" or (
            opts.branching == "auto" and net.dims > opts.input_split_max_dims
        )
        chain = None if relu_mode or not self.use_lp else ReluChain.of(net)
        if chain is not None:
            self.splitter = input_split.ChainSplit(self, chain)

    # ---------------------------------------------------------------- engine, under the clock
    def bound(self, lo: Tensor, hi: Tensor, splits=None) -> Bounds:
        """Bounds for all rows, in calls cut to the time left (raises `_OutOfTime`)."""
        parts, at = [], 0
        n = lo.shape[0]
        while at < n:
            k = self.clock.rows_allowed(n - at)
            t0 = time.monotonic()
            sl = slice(at, at + k)
            part = self.net.bound(
                lo[sl], hi[sl], self.c, None if splits is None else tuple(s[sl] for s in splits)
            )
            self.clock.measured(k, time.monotonic() - t0)
            parts.append(part)
            self.domains += k
            at += k
        return parts[0] if len(parts) == 1 else relu_bab.cat_bounds(parts)

    # ------------------------------------------------------------------------------ attacks
    def check(self, points: Tensor) -> None:
        """Confirm points that violate in our copy on the original (raises `_Found`)."""
        t0 = time.monotonic()
        try:
            with torch.no_grad():
                y = self.net(points).numpy()
            for i in np.flatnonzero(self.problem.violated(y)):
                found = confirm(self.original, self.problem, points[i].numpy(), self.lo, self.hi)
                if found is not None:
                    raise _Found(found)
                self.unconfirmed += 1
        finally:
            self.clock.attack += time.monotonic() - t0

    def attack_box(self, lo: Tensor, hi: Tensor) -> None:
        o = self.opts
        if o.pgd_steps == 0 or o.pgd_restarts == 0:
            return
        t0 = time.monotonic()
        points = attack.whole_box(
            self.net, self.problem, lo, hi, o.pgd_restarts, o.pgd_steps, self.gen
        )
        self.clock.attack += time.monotonic() - t0
        self.check(points)

    def attack_wide(self) -> None:
        """Once the search has bounded `WIDE_AFTER` domains without closing: PGD from
        `WIDE_RESTARTS` random starts (shared by the terms) over the whole box (input
        splitting only: a few inputs make a thousand starts cheap; ACAS Xu 1_9 property 7's
        counterexample appeared at 1,024 starts, not at 16)."""
        if self.wide_done or self.domains < WIDE_AFTER or self.opts.pgd_steps == 0:
            return
        self.wide_done = True
        lo, hi = torch.from_numpy(self.lo).to(DTYPE), torch.from_numpy(self.hi).to(DTYPE)
        gen = torch.Generator().manual_seed(int(self.gen.initial_seed()) + 1)
        per_term = max(1, 128 // self.problem.terms)  # 1,024 starts in all, terms sharing
        for _ in range(WIDE_RESTARTS // 128):  # in rounds, each after a look at the clock
            if self.clock.left() <= 0:
                raise _OutOfTime
            t0 = time.monotonic()
            chain = self.splitter.chain
            points = attack.whole_box(chain, self.problem, lo, hi, per_term, WIDE_STEPS, gen)
            self.clock.attack += time.monotonic() - t0
            self.check(points)

    def attack_domains(self, queue: Domains) -> None:
        """PGD inside the hardest open domains, while attacks stay under their time share."""
        elapsed = time.monotonic() - self.start
        if self.opts.pgd_steps == 0 or self.clock.attack > ATTACK_SHARE * elapsed or not len(queue):
            return
        hard = queue.worst(DOMAIN_ATTACKS)
        if not bool(torch.isfinite(hard.margin).all()):
            return
        t0 = time.monotonic()
        points = attack.in_domains(
            self.net, self.problem, hard.lo, hard.hi, hard.a_worst, hard.term, DOMAIN_STEPS
        )
        self.clock.attack += time.monotonic() - t0
        self.check(points)

    # ------------------------------------------------------------------------------ bounding
    def close(self, batch: Domains, b: Bounds) -> tuple[Domains, Bounds]:
        """Record the bounds on the domains; drop the closed and the empty ones."""
        still = batch.open & ~self.problem.closed_terms(b.lower)
        keep = still.any(1) & ~b.empty
        batch, b = batch.select(keep), _select(b, keep)
        batch.open = still[keep]
        margins = term_margins(self.problem, b.lower, batch.open)
        batch.margin, batch.term = margins.min(1)
        rows = worst_rows(self.problem, b.lower, batch.open)
        batch.a_worst = b.a_in[torch.arange(len(batch)), rows]
        batch.fixed = fixed_phases(b.pre, batch.splits, len(batch))
        return batch, b

    def candidates(self, batch: Domains) -> None:
        """Each open domain's centre and the corner its worst row's bound points at."""
        if len(batch):
            corner = attack.worst_corner(batch.lo, batch.hi, batch.a_worst)
            self.check(torch.cat([(batch.lo + batch.hi) / 2, corner]))

    def leaves(self, batch: Domains, b: Bounds | None) -> Tensor:
        """Decide domains with every ReLU fixed exactly (an LP per open term, closing terms in
        `batch.open`); returns (N,) which domains stay open."""
        keep = torch.ones(len(batch), dtype=torch.bool)
        if not self.use_lp or not bool(batch.fixed.any()):
            return keep
        idx = torch.nonzero(batch.fixed).flatten()
        if b is None:  # input splitting keeps no phases: bound the few fixed domains again
            sub = batch.select(idx)
            pre = self.bound(sub.lo, sub.hi, sub.splits).pre
            at = {int(i): k for k, i in enumerate(idx)}
        else:
            pre = b.pre
            at = {int(i): int(i) for i in idx}
        for i in idx.tolist():
            if self.clock.left() <= 0:
                raise _OutOfTime
            k = at[i]
            phases = [
                torch.where(s[i] != 0, s[i], torch.where(low[k] >= 0, 1, -1).to(torch.int8))
                for (low, _), s in zip(pre, batch.splits, strict=True)
            ]
            ph = [p.numpy() for p in phases]
            closed, points = leaf.decide(
                self.net,
                self.problem,
                [(p > 0).astype(np.float64) for p in ph],
                np.concatenate(ph) if ph else np.zeros(0),
                batch.lo[i].numpy(),
                batch.hi[i].numpy(),
                batch.open[i].numpy(),
            )
            batch.open[i] &= ~torch.from_numpy(closed)
            if points:
                self.check(torch.from_numpy(np.stack(points)))
            keep[i] = bool(batch.open[i].any())
        return keep

    # ------------------------------------------------------------------------------ branching
    def split_inputs(self, batch: Domains) -> Domains:
        """Strong branching: bound every candidate child, keep the best pair (bounded)."""
        n, d = len(batch), batch.lo.shape[1]
        dims = input_candidates(batch, min(d, self.opts.split_candidates))
        k = dims.shape[1]
        lo, hi = bisect(batch, dims)  # (n, k, 2, d)
        b = self.bound(lo.reshape(-1, d), hi.reshape(-1, d))
        parent_open = batch.open.repeat_interleave(2 * k, 0)
        still = parent_open & ~self.problem.closed_terms(b.lower) & ~b.empty[:, None]
        margins = term_margins(self.problem, b.lower, still).amin(1)  # +inf: closed
        choice = pick_split(margins.reshape(n, k, 2))
        flat = (torch.arange(n) * k + choice)[:, None] * 2 + torch.arange(2)[None]
        flat = flat.reshape(-1)
        children = Domains(
            lo.reshape(-1, d)[flat],
            hi.reshape(-1, d)[flat],
            parent_open[flat],
            tuple(s.repeat_interleave(2, 0) for s in batch.splits),
            batch.depth.repeat_interleave(2) + 1,
            margins[flat],
            batch.a_worst.repeat_interleave(2, 0),
            batch.fixed.repeat_interleave(2),
            batch.term.repeat_interleave(2),
        )
        children, _ = self.close(children, _select(b, flat))
        return children

    def run(self) -> Outcome:
        net, problem, opts = self.net, self.problem, self.opts
        lo_t = torch.from_numpy(self.lo).to(DTYPE)
        hi_t = torch.from_numpy(self.hi).to(DTYPE)
        alone = "unknown"
        try:
            root = Domains.root(
                lo_t, hi_t, torch.ones(1, problem.terms, dtype=torch.bool), net.relu_sizes
            )
            if self.splitter is not None:
                root, b = self.splitter.root(root), None
            else:
                root, b = self.close(root, self.bound(root.lo, root.hi, root.splits))
            if not len(root):
                return self.outcome("holds", alone="holds")
            self.attack_box(lo_t, hi_t)
            self.candidates(root)
            relu_mode = opts.branching == "relu" or (
                opts.branching == "auto" and net.dims > opts.input_split_max_dims
            )
            if relu_mode:  # optimised slopes at the root, kept for the children (beta-CROWN)
                root, b = self.close(root, relu_bab.bound_domains(self, root, root=True))
                if not len(root):
                    return self.outcome("holds", alone="holds")
                relu_bab.remember(root, b)
            queue = root.select(self.leaves(root, b)) if relu_mode else root
            while len(queue):
                if len(queue) > opts.max_domains:
                    reason = f"more than {opts.max_domains} open domains (raise max_domains)"
                    return self.outcome("unknown", reason, alone=alone)
                if self.clock.left() <= 0:
                    raise _OutOfTime
                batch = queue.pop(opts.batch)
                children = self.step_relu(batch) if relu_mode else self.step_input(batch)
                if len(children):
                    self.depth = max(self.depth, int(children.depth.max()))
                    queue.push(children)
                self.attack_domains(queue)
                if self.splitter is not None:
                    self.attack_wide()
            return self.outcome("holds", alone=alone)
        except _Found as found:
            x, y = found.cex
            cex = {"input": x.astype(np.float64).tolist(), "outputs": y.tolist()}
            return self.outcome("violated", counterexample=cex, alone=alone)
        except NumericalTrouble as trouble:
            return self.outcome("unknown", f"numerical trouble: {trouble}", alone=alone)
        except _OutOfTime:
            reason = (
                f"time limit reached after {self.domains} domains "
                f"({opts.time_limit:.3g}s left for the search)"
            )
            if self.unconfirmed:
                reason += (
                    f"; {self.unconfirmed} point(s) violated the property in our float64 "
                    f"copy but not on {self.original.name}"
                )
            return self.outcome("unknown", reason, timed_out=True, alone=alone)

    def step_input(self, batch: Domains) -> Domains:
        """Bounded open domains in: the open children of their best splits out."""
        if self.splitter is not None:
            return self.splitter.step(batch)
        self.candidates(batch)
        batch = batch.select(self.leaves(batch, None))
        return self.split_inputs(batch) if len(batch) else batch

    def step_relu(self, batch: Domains) -> Domains:
        """Unbounded domains in: bounded (optimised, warm-started from the parent), checked,
        leaves decided, split by ReLU phase."""
        batch, b = self.close(batch, relu_bab.bound_domains(self, batch))
        relu_bab.remember(batch, b)
        self.candidates(batch)
        if not len(batch):
            return batch
        keep = self.leaves(batch, b)
        batch, b = batch.select(keep), _select(b, keep)
        rows = worst_rows(self.problem, b.lower, batch.open)
        free = ~batch.fixed
        parts = []
        if bool(free.any()):
            sub = batch.select(free)
            children, _ = fsb_split(
                self.net, self.problem, self.c, sub, tuple(a[free] for a in b.relu_a), rows[free]
            )
            parts.append(children)
        if bool((~free).any()):  # an LP left undecided (numerical trouble): bisect inputs
            parts.append(widest_split(batch.select(~free)))
        return cat(parts) if parts else batch

    def outcome(self, verdict, reason=None, timed_out=False, counterexample=None, alone="unknown"):
        return Outcome(
            verdict,
            reason,
            timed_out,
            counterexample,
            self.domains,
            self.depth,
            alone,
            time.monotonic() - self.start,
            self.unconfirmed,
            self.clock.attack,
        )


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
    return _Search(net, problem, original, lo, hi, opts, seed).run()


def _select(b: Bounds, keep) -> Bounds:
    return relu_bab.select_bounds(b, keep)
