"""Certified regret for one profile and agent: maximise utility over the misreport (eq. 4.1).

Sound or silent: the certified regret is the solver's *bound* on the best utility minus the
truthful utility, claimed only when optimality is proven (gap within tolerance). A time-out or
any other status gives ``certified_regret=None`` with the reason; the bound is still reported.

Where the solver cannot take the bilinear IR payment exactly (HiGHS), each box is solved with the
McCormick relaxation (a sound upper bound) and the misreport box is split (spatial branch and
bound) until the bound meets the utility of the best misreport found, evaluated by the network.
"""

from __future__ import annotations

import heapq
import time

import attrs
import numpy as np
import torch

from .bounds import BoundMethod
from .formulation import Formulation, formulate
from .mechanisms import Mechanism, utilities
from .solvers import SolveResult, SolverKind, SolverOptions, SolveStatus, solve


@attrs.frozen
class CertifyConfig:
    solver: SolverKind = SolverKind.AUTO
    bounds: BoundMethod = BoundMethod.LINEAR
    time_limit: float = 60.0  # seconds per (profile, agent), all boxes together
    gap: float = 1e-6  # absolute optimality gap of one MIP
    branch_gap: float = 1e-5  # absolute gap at which spatial branching stops
    max_boxes: int = 400


@attrs.frozen
class AgentCertificate:
    agent: int
    truthful_utility: float
    utility_bound: float  # sound upper bound on the best utility (inf when none)
    best_utility: float  # the network's utility at the best misreport found
    misreport: np.ndarray | None  # that misreport (the counterexample when regret is positive)
    certified_regret: float | None  # bound - truthful, only with proven optimality
    seconds: float
    solver: str
    boxes: int = 1
    reason: str | None = None  # why not certified, or the solver fallback note
    residual: float = float("nan")  # |MIP - network| for allocation/payment/utility at optimum
    stats: dict = attrs.Factory(dict)

    @property
    def regret_found(self) -> float:
        return self.best_utility - self.truthful_utility


def _utility(mech: Mechanism, profile: np.ndarray, agent: int, bids: np.ndarray):
    prof = torch.from_numpy(np.array(profile, dtype=np.float64))
    bid_prof = prof.clone()
    bid_prof[agent] = torch.from_numpy(bids)
    with torch.no_grad():
        u, alloc, pay = utilities(mech, bid_prof[None], prof[None])
    return float(u[0, agent]), alloc[0, agent].numpy(), float(pay[0, agent])


def _residual(mech, profile, agent, form: Formulation, res: SolveResult, bids) -> float:
    _, alloc, pay = _utility(mech, profile, agent, bids)
    diffs = [np.abs(form.allocation.value(res.x) - alloc).max()]
    if not res.relaxed:
        diffs += [abs(form.payment.value(res.x)[0] - pay)]
        diffs += [abs(form.utility.value(res.x)[0] - res.objective)]
    return float(max(diffs))


def certify_agent(
    mech: Mechanism,
    profile: np.ndarray,
    agent: int,
    low: float,
    high: float,
    config: CertifyConfig,
    limited_licence: bool = True,
) -> AgentCertificate:
    """``mech`` must be float64 and in eval mode; ``profile`` is ``(agents, items)``."""
    start = time.perf_counter()
    items = mech.config.items
    truthful, _, _ = _utility(mech, profile, agent, np.asarray(profile[agent], dtype=np.float64))
    best_u, best_b, fallback, solver_name = truthful, None, None, ""
    residual, stats, boxes = float("nan"), {}, 0
    heap: list[tuple[float, int, np.ndarray, np.ndarray]] = []

    def solve_box(lo: np.ndarray, hi: np.ndarray) -> SolveResult:
        nonlocal best_u, best_b, fallback, solver_name, residual, stats, boxes
        form = formulate(mech, profile, agent, lo, hi, config.bounds)
        left = max(0.1, config.time_limit - (time.perf_counter() - start))
        opts = SolverOptions(time_limit=left, mip_gap=config.gap)
        res, why = solve(form.model, config.solver, opts, limited_licence)
        fallback, solver_name, boxes = fallback or why, res.solver, boxes + 1
        stats = stats or {
            **form.model.stats(),
            "unstable_relus": form.unstable,
            "relus": form.relus,
        }
        if res.x is not None:
            bids = np.clip(res.x[form.bid_vars], lo, hi)
            u, _, _ = _utility(mech, profile, agent, bids)
            if u > best_u:
                best_u, best_b = u, bids
            if res.status is SolveStatus.OPTIMAL:
                residual = max(
                    np.nan_to_num(residual), _residual(mech, profile, agent, form, res, bids)
                )
        return res

    def done(bound: float, certified: bool, reason: str | None) -> AgentCertificate:
        notes = "; ".join(r for r in (reason, fallback) if r) or None
        regret = bound - truthful if certified else None
        return AgentCertificate(
            agent,
            truthful,
            bound,
            best_u,
            best_b,
            regret,
            time.perf_counter() - start,
            solver_name,
            boxes,
            notes,
            residual,
            stats,
        )

    lo0, hi0 = np.full(items, float(low)), np.full(items, float(high))
    res = solve_box(lo0, hi0)
    if res.status is not SolveStatus.OPTIMAL:
        return done(res.bound if np.isfinite(res.bound) else float("inf"), False, res.reason)
    if not res.relaxed:
        return done(res.bound, True, None)
    heapq.heappush(heap, (-res.bound, 0, lo0, hi0))
    counter = 1
    while heap:
        neg_ub, _, lo, hi = heapq.heappop(heap)
        if -neg_ub <= best_u + config.branch_gap:
            return done(max(-neg_ub, best_u), True, None)
        if boxes >= config.max_boxes or time.perf_counter() - start > config.time_limit:
            return done(-neg_ub, False, f"spatial branching stopped after {boxes} boxes, gap open")
        axis = int(np.argmax(hi - lo))
        mid = (lo[axis] + hi[axis]) / 2
        for part in range(2):
            c_lo, c_hi = lo.copy(), hi.copy()
            (c_hi if part == 0 else c_lo)[axis] = mid
            r = solve_box(c_lo, c_hi)
            if r.status is not SolveStatus.OPTIMAL:
                bound = max([-neg_ub] + [-h[0] for h in heap])
                return done(bound, False, r.reason)
            heapq.heappush(heap, (-r.bound, counter, c_lo, c_hi))
            counter += 1
    raise AssertionError("unreachable: the heap never empties before the bound closes")
