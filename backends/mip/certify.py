"""Certified regret for one profile and agent: maximise utility over the misreport (eq. 4.1).

Sound or silent: the certified regret is the solver's *bound* on the best utility minus the
truthful utility. A solve stopped at its time limit (or a spatial branch and bound stopped at its
node or time limit) still holds a sound bound: it is certified too, with ``optimal`` false and
the gap to the best misreport found (issue 22). No finite bound, numerical trouble or any other
status gives ``certified_regret=None`` with the reason.

Where the solver cannot take the bilinear IR payment exactly (HiGHS), each box is solved with the
McCormick relaxation (a sound upper bound) and the misreport box is split (spatial branch and
bound) until the bound meets the utility of the best misreport found, evaluated by the network.
"""

from __future__ import annotations

import time

import attrs
import numpy as np
import torch

from .bounds import BoundMethod
from .formulation import Formulation, formulate
from .mechanisms import Mechanism, utilities
from .solvers import SolveResult, SolverKind, SolverOptions, SolveStatus, solve
from .spatial import spatial_branch_and_bound


@attrs.frozen
class CertifyConfig:
    solver: SolverKind = SolverKind.AUTO
    bounds: BoundMethod = BoundMethod.LINEAR
    time_limit: float = 60.0  # seconds per (profile, agent), all boxes together
    gap: float = 1e-6  # absolute optimality gap of one MIP
    branch_gap: float = 1e-4  # absolute gap at which spatial branching stops
    max_boxes: int = 400
    threads: int = 1
    residual_tol: float = 1e-5  # MIP vs network disagreement above this is numerical trouble
    bound_tol: float = 1e-6  # a proven bound this far below the truthful utility is trouble too


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
    reason: str | None = None  # why not certified, or the solver switch note
    residual: float = float("nan")  # |MIP - network| for allocation/payment/utility at optimum
    stats: dict = attrs.Factory(dict)
    switch: str | None = None  # `solver auto` moved this certificate off Gurobi: why, to what
    optimal: bool = True  # false: the bound is a stopped solve's best bound (gap open)

    @property
    def gap(self) -> float:
        """Bound minus the utility of the best misreport found (0 up to tolerance when closed)."""
        return max(self.utility_bound - self.best_utility, 0.0)

    @property
    def regret_found(self) -> float:
        return _regret(self.best_utility - self.truthful_utility)

    @property
    def regret_upper_bound(self) -> float:
        return _regret(self.utility_bound - self.truthful_utility)


def _regret(gain: float) -> float:
    """Regret is never negative (truthful bidding is a misreport too); ``+ 0.0`` turns -0.0
    into 0.0 so no report reads "-0.0"."""
    return max(gain, 0.0) + 0.0


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
    lo, hi = np.full(items, float(low)), np.full(items, float(high))
    form = formulate(mech, profile, agent, lo, hi, config.bounds)
    best = {"u": truthful, "b": None}
    notes: dict = {"fallback": None, "solver": "", "residual": float("nan")}

    def evaluate(x: np.ndarray) -> float:
        bids = np.clip(x[form.bid_vars], lo, hi)
        u, _, _ = _utility(mech, profile, agent, bids)
        if u > best["u"]:
            best["u"], best["b"] = u, bids
        return u

    def solve_fn(model, left: float) -> SolveResult:
        opts = SolverOptions(time_limit=max(1e-3, left), mip_gap=config.gap, threads=config.threads)
        res, why = solve(model, config.solver, opts, limited_licence)
        notes["fallback"] = notes["fallback"] or why
        notes["solver"] = res.solver
        if res.x is not None and res.status in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT):
            bids = np.clip(res.x[form.bid_vars], lo, hi)
            r = _residual(mech, profile, agent, form, res, bids)
            notes["residual"] = max(np.nan_to_num(notes["residual"]), r)
        return res

    def done(
        bound: float, certified: bool, reason: str | None, boxes: int = 1, optimal: bool = True
    ) -> AgentCertificate:
        if certified and notes["residual"] > config.residual_tol:  # sound or silent
            certified = False
            reason = f"numerical trouble: the MIP solution disagrees with the network by {notes['residual']:.2e}"
        if certified and bound < truthful - config.bound_tol:  # truthful bidding is feasible
            certified = False
            reason = f"numerical trouble: the proven bound is {truthful - bound:.2e} below the truthful utility"
        why = "; ".join(r for r in (reason, notes["fallback"]) if r) or None
        stats = {
            **form.model.stats(),
            "unstable_relus": form.unstable,
            "relus": form.relus,
            "optimal": bool(certified and optimal),
            "regret_gap": max(bound - best["u"], 0.0) if np.isfinite(bound) else None,
        }
        return AgentCertificate(
            agent,
            truthful,
            bound,
            best["u"],
            best["b"],
            _regret(bound - truthful) if certified else None,
            time.perf_counter() - start,
            notes["solver"],
            boxes,
            why,
            notes["residual"],
            stats,
            notes["fallback"],
            bool(certified and optimal),
        )

    res = solve_fn(form.model, config.time_limit)
    if res.x is not None:
        evaluate(res.x)
    if res.status is SolveStatus.TIME_LIMIT and np.isfinite(res.bound):  # still an upper bound
        gap = res.bound - best["u"]
        why = f"{res.reason or 'time limit'}; certified at the solver's best bound, gap {gap:.2e}"
        return done(res.bound, True, why, optimal=False)
    if res.status is not SolveStatus.OPTIMAL:
        return done(res.bound if np.isfinite(res.bound) else float("inf"), False, res.reason)
    if not np.isfinite(res.bound):  # "optimal" without a usable bound proves nothing
        why = f"numerical trouble: {res.solver} reported optimal with bound {res.bound}"
        return done(float("inf"), False, why)
    if not res.relaxed:
        return done(res.bound, True, None)
    left = config.time_limit - (time.perf_counter() - start)
    sbb = spatial_branch_and_bound(
        form.model, res, solve_fn, evaluate, config.branch_gap, left, config.max_boxes
    )
    stopped = (  # stopped at its node or time limit: the largest open node's bound holds
        not sbb.certified
        and (sbb.reason or "").startswith("spatial branch and bound stopped")
        and np.isfinite(sbb.bound)
    )
    return done(sbb.bound, sbb.certified or stopped, sbb.reason, sbb.nodes, sbb.certified)
