"""The worst-case regret over the whole bid support: one MIP per agent (issue 22).

Eq. 4.1 is the regret at one profile; the chapter certifies it at sampled profiles. A mechanism's
claim "regret at most r" is about every profile, so here the agent's true values ``v``, its
misreport ``b`` and the other bidders' bids ``o`` are all variables over the support, and one
MIP maximises ``u_i(b, o; v) - u_i(v, o; v)``. The network appears twice (at ``(v, o)`` and at
``(b, o)``); the big-M constants of both copies come from bounds over the whole support. The
utilities multiply allocations by the (now variable) true values, so the MIP is bilinear for
every payment kind: SCIP solves it globally, HiGHS through McCormick relaxations closed by
spatial branching; Gurobi's size-limited licence refuses bilinear models over 200 variables.

Sound or silent, with one change from the per-profile certificates: a solve stopped at its time
limit still holds a valid upper bound (its best bound), and that bound is reported as the
certified max regret with its gap to the best regret found (evaluated by the network). Only a
solve with no finite bound, or whose solution disagrees with the network, gives no bound.
"""

from __future__ import annotations

import heapq
import time

import attrs
import numpy as np
import torch

from .certify import CertifyConfig
from .formulation import float_layers, network_copy, padded_bounds
from .mechanisms import Mechanism, utilities
from .model import Expr, MipModel
from .solvers import SolverKind, SolverOptions, SolveStatus, gurobi, solve


@attrs.frozen
class SupportFormulation:
    model: MipModel
    values: np.ndarray  # (items,) variable of each true value of the agent
    misreport: np.ndarray  # (items,) variable of each misreported bid
    others: np.ndarray  # (agents - 1, items) variables of the other bidders' bids
    truthful_utility: Expr  # (1,)
    misreport_utility: Expr  # (1,)
    unstable: int
    relus: int


@attrs.frozen
class Witness:
    """A point of the support and the regret the network gives it (a real lower bound)."""

    values: np.ndarray  # (items,) the agent's true values
    misreport: np.ndarray  # (items,)
    others: np.ndarray  # (agents - 1, items)
    regret: float


@attrs.frozen
class SupportCertificate:
    """The certified worst-case regret of one agent over the whole support.

    ``regret_bound`` is a sound upper bound on ``max_{v, b, o} rgt`` (None when the solver gave
    no finite bound or numerical trouble voids it); ``regret_found`` the largest regret the
    network attains at a point found (MIP incumbent or the caller's attack); ``optimal`` true
    when the gap was closed to the solver's tolerance, false when the time limit stopped it.
    """

    agent: int
    regret_bound: float | None
    regret_found: float
    witness: Witness | None
    optimal: bool
    seconds: float
    solver: str
    reason: str | None = None
    residual: float = float("nan")
    stats: dict = attrs.Factory(dict)

    @property
    def gap(self) -> float | None:
        return None if self.regret_bound is None else self.regret_bound - self.regret_found


def _product(model: MipModel, a: int, b: int) -> int:
    """A variable equal to ``x_a * x_b`` (its range from the factors' corners)."""
    corners = [x * y for x in (model.lb[a], model.ub[a]) for y in (model.lb[b], model.ub[b])]
    t = model.var(min(corners), max(corners))
    model.bilinear.append((t, int(a), int(b)))
    return t


def _value_of_allocation(model: MipModel, alloc: Expr, values: np.ndarray) -> dict[int, float]:
    """``sum_j a_j v_j`` as coefficients over new product variables (alloc rows are single
    variables from the sparsemax encoding, or identically zero)."""
    coefs: dict[int, float] = {}
    for j, v in enumerate(values):
        nz = np.flatnonzero(alloc.a[j])
        if len(nz) == 0:
            continue
        (a_var,) = nz
        t = _product(model, int(a_var), int(v))
        coefs[t] = coefs.get(t, 0.0) + float(alloc.a[j, a_var])
    return coefs


def _utility(model: MipModel, coefs: dict[int, float], pay: Expr) -> Expr:
    row = np.zeros(model.n)
    for j, c in coefs.items():
        row[j] += c
    row -= pay.padded(model.n)[0]
    return Expr(row[None], np.array([-pay.c[0]]))


@attrs.frozen
class Cell:
    """A box of the agent's true values, its misreport and the other bids."""

    values_lo: np.ndarray  # (items,)
    values_hi: np.ndarray
    misreport_lo: np.ndarray  # (items,)
    misreport_hi: np.ndarray
    others_lo: np.ndarray  # (agents - 1, items)
    others_hi: np.ndarray

    @staticmethod
    def whole(agents: int, items: int, low: float, high: float) -> Cell:
        own, rest = np.full(items, float(low)), np.full((agents - 1, items), float(low))
        top, rest_top = np.full(items, float(high)), np.full((agents - 1, items), float(high))
        return Cell(own, top, own.copy(), top.copy(), rest, rest_top)

    def _flat(self) -> tuple[np.ndarray, np.ndarray]:
        lo = np.concatenate([self.values_lo, self.others_lo.reshape(-1), self.misreport_lo])
        hi = np.concatenate([self.values_hi, self.others_hi.reshape(-1), self.misreport_hi])
        return lo, hi

    def split(self, misreport: bool = False) -> tuple[Cell, Cell]:
        """Halve the widest side among the values and other bids (and the misreport when
        ``misreport``: needed only where a solver relaxes the payment's product with it)."""
        lo, hi = self._flat()
        items, n_rest = len(self.values_lo), self.others_lo.size
        width = hi - lo
        if not misreport:
            width[items + n_rest :] = -1.0
        k = int(np.argmax(width))
        mid = (lo[k] + hi[k]) / 2
        out = []
        for a, b in ((lo[k], mid), (mid, hi[k])):
            clo, chi = lo.copy(), hi.copy()
            clo[k], chi[k] = a, b
            shape = self.others_lo.shape
            r = slice(items, items + n_rest)
            m = slice(items + n_rest, None)
            out.append(
                Cell(
                    clo[:items],
                    chi[:items],
                    clo[m],
                    chi[m],
                    clo[r].reshape(shape),
                    chi[r].reshape(shape),
                )
            )
        return out[0], out[1]


def _profile_box(agent: int, own_lo, own_hi, others_lo, others_hi) -> tuple[np.ndarray, np.ndarray]:
    rows_lo, rows_hi = list(others_lo), list(others_hi)
    lo = np.stack(rows_lo[:agent] + [np.asarray(own_lo)] + rows_lo[agent:])
    hi = np.stack(rows_hi[:agent] + [np.asarray(own_hi)] + rows_hi[agent:])
    return lo.reshape(-1), hi.reshape(-1)


def formulate_support(
    mechanism: Mechanism, agent: int, low: float, high: float, method, cell: Cell | None = None
) -> SupportFormulation:
    """Maximise the agent's regret jointly over its values, its misreport and the others' bids
    (all within ``cell``, the whole support by default). Each copy's big-M constants come from bounds over its own inputs'
    box: with the whole support as the cell, both copies share one box."""
    cfg = mechanism.config
    layers = float_layers(mechanism)
    agents, items = cfg.agents, cfg.items
    cell = cell or Cell.whole(agents, items, low, high)
    b_lo, b_hi = cell.misreport_lo, cell.misreport_hi
    truth_box = _profile_box(agent, cell.values_lo, cell.values_hi, cell.others_lo, cell.others_hi)
    lie_box = _profile_box(agent, b_lo, b_hi, cell.others_lo, cell.others_hi)
    truth_bounds = padded_bounds(layers, *truth_box, method)
    lie_bounds = padded_bounds(layers, *lie_box, method)

    model = MipModel()
    values = model.vars(cell.values_lo, cell.values_hi)
    misreport = model.vars(b_lo, b_hi)
    others = model.vars(cell.others_lo.reshape(-1), cell.others_hi.reshape(-1)).reshape(
        agents - 1, items
    )

    def inputs(own: np.ndarray) -> Expr:
        a = np.zeros((agents * items, model.n))
        rows = iter(others)
        for i in range(agents):
            a[i * items + np.arange(items), own if i == agent else next(rows)] = 1.0
        return Expr(a, np.zeros(agents * items))

    truth = network_copy(model, mechanism, layers, truth_bounds, inputs(values), agent, values)
    lie = network_copy(model, mechanism, layers, lie_bounds, inputs(misreport), agent, misreport)
    u_truth = _utility(model, _value_of_allocation(model, truth.allocation, values), truth.payment)
    u_lie = _utility(model, _value_of_allocation(model, lie.allocation, values), lie.payment)
    n = model.n
    regret = Expr(u_lie.padded(n) - u_truth.padded(n), u_lie.c - u_truth.c)
    model.set_objective(regret)
    return SupportFormulation(
        model,
        values,
        misreport,
        others,
        u_truth,
        u_lie,
        truth.unstable + lie.unstable,
        truth.relus + lie.relus,
    )


def regret_at_points(
    mech: Mechanism, agent: int, values: torch.Tensor, misreports: torch.Tensor, others
) -> torch.Tensor:
    """The network's regret ``u(b, o; v) - u(v, o; v)`` at ``B`` points: ``(B,)``.

    ``values``, ``misreports``: ``(B, items)``; ``others``: ``(B, agents - 1, items)``."""
    rows = list(others.unbind(dim=1))
    truth = torch.stack(rows[:agent] + [values] + rows[agent:], dim=1)
    lie = torch.stack(rows[:agent] + [misreports] + rows[agent:], dim=1)
    with torch.no_grad():
        u_truth, _, _ = utilities(mech, truth, truth)
        u_lie, _, _ = utilities(mech, lie, truth)
    return u_lie[:, agent] - u_truth[:, agent]


def _witness(mech, agent, form: SupportFormulation, x: np.ndarray, low, high) -> Witness:
    v, b, o = (np.clip(x[idx], low, high) for idx in (form.values, form.misreport, form.others))
    t = torch.from_numpy
    r = regret_at_points(mech, agent, t(v)[None], t(b)[None], t(o)[None])
    return Witness(v, b, o, float(r[0]))


def _residual(mech, agent, form: SupportFormulation, x: np.ndarray, w: Witness) -> float:
    """|MIP - network| of both utilities at the MIP's point (exact formulations only)."""
    rows = list(torch.from_numpy(w.others).unbind(0))
    v, b = torch.from_numpy(w.values), torch.from_numpy(w.misreport)
    truth = torch.stack(rows[:agent] + [v] + rows[agent:])[None]
    lie = torch.stack(rows[:agent] + [b] + rows[agent:])[None]
    with torch.no_grad():
        u_t, _, _ = utilities(mech, truth, truth)
        u_l, _, _ = utilities(mech, lie, truth)
    return max(
        abs(float(form.truthful_utility.value(x)[0]) - float(u_t[0, agent])),
        abs(float(form.misreport_utility.value(x)[0]) - float(u_l[0, agent])),
    )


@attrs.frozen
class SupportSearch:
    """How the support is searched: the root MIP gets ``root_share`` of the time limit; then
    cells of (true values, other bids) are split best-first, each a MIP of at most
    ``cell_limit`` seconds with big-M constants from its own box."""

    root_share: float = 0.1
    cell_limit: float = 30.0
    max_cells: int = 4096


def certify_support(
    mech: Mechanism,
    agent: int,
    low: float,
    high: float,
    config: CertifyConfig,
    limited_licence: bool = True,
    start: Witness | None = None,
    search: SupportSearch = SupportSearch(),
) -> SupportCertificate:
    """``mech`` float64, eval mode. ``start``: the best point an attack found (a lower bound
    the certificate must not fall below, and the incumbent until a MIP beats it).

    First one MIP over the whole support (the formulation above, big-M from bounds over the
    whole support). Its relaxation is loose (both copies of the network relaxed at once, the
    value products over [0, 1]^2), so when its gap stays open the space of true values and
    other bids (and misreports, where a solver relaxes products) is split best-first: a cell's MIP has big-M constants and product envelopes
    from the cell's own box, and every cell keeps its parent's bound until its own is
    proven. The reported bound is the largest over the open cells (they cover the support),
    sound whenever the search stops."""
    t0 = time.perf_counter()
    deadline = t0 + config.time_limit
    best = {"w": start}
    notes: dict = {"switch": None, "solver": set(), "residual": float("nan"), "cells": 0}

    def found() -> float:
        return 0.0 if best["w"] is None else max(best["w"].regret, 0.0)

    def solve_cell(
        cell: Cell | None, seconds: float, cutoff: float | None = None
    ) -> tuple[float, SupportFormulation | None]:
        """A sound upper bound on the regret over the cell (inf when the solver gave none).
        ``cutoff``: the solver may stop once it proves the cell cannot beat it. A cell whose
        MIP the fast solver's licence refuses is not solved (its parent's bound stands)."""
        form = formulate_support(mech, agent, low, high, config.bounds, cell)
        if cell is not None and fast_refuses(form.model):
            return float("inf"), None
        opts = SolverOptions(
            time_limit=max(1e-3, seconds),
            mip_gap=config.gap,
            threads=config.threads,
            cutoff=cutoff,
        )
        res, why = solve(form.model, config.solver, opts, limited_licence)
        notes["switch"] = notes["switch"] or why
        notes["solver"].add(res.solver)
        notes["cells"] += 1
        notes["relaxed"] = notes.get("relaxed", False) or res.relaxed
        if res.x is not None:
            w = _witness(mech, agent, form, res.x, low, high)
            if best["w"] is None or w.regret > best["w"].regret:
                best["w"] = w
            if not res.relaxed:
                r = _residual(mech, agent, form, res.x, w)
                notes["residual"] = max(np.nan_to_num(notes["residual"]), r)
        ok = res.status in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT)
        bound = res.bound if ok and np.isfinite(res.bound) else float("inf")
        if cutoff is not None:  # nodes pruned at the cutoff may hold values up to it
            bound = max(bound, cutoff)
        if res.status is SolveStatus.OPTIMAL and not res.relaxed:
            bound = max(bound, res.objective)
        return bound, form

    def fast_refuses(model: MipModel) -> bool:
        """`solver auto` with Gurobi's size-limited licence: cells too big for it are split
        further rather than handed to the slower exact solver."""
        if config.solver is not SolverKind.AUTO or not gurobi.available():
            return False
        return gurobi.size_problem(model, limited_licence) is not None

    root_bound, root = solve_cell(None, config.time_limit * search.root_share)
    root_seconds = time.perf_counter() - t0
    heap = [(-root_bound, 0, Cell.whole(mech.config.agents, mech.config.items, low, high))]
    counter, reason = 1, None
    while heap:
        top = -heap[0][0]
        if top <= found() + config.branch_gap:
            break
        left = deadline - time.perf_counter()
        if left <= 0 or notes["cells"] >= search.max_cells:
            reason = f"time limit {config.time_limit:g}s: {len(heap)} cells open"
            break
        _, _, cell = heapq.heappop(heap)
        for child in cell.split(misreport=notes.get("relaxed", False)):
            left = deadline - time.perf_counter()
            bound = top
            if left > 0:
                cutoff = found() + config.branch_gap
                bound = min(top, solve_cell(child, min(search.cell_limit, left), cutoff)[0])
            if bound > found() + config.branch_gap:
                heapq.heappush(heap, (-bound, counter, child))
                counter += 1
    bound = max([-h[0] for h in heap] + [found()])
    optimal = bound <= found() + config.branch_gap
    claim: float | None = max(bound, 0.0) + 0.0 if np.isfinite(bound) else None
    if claim is not None and notes["residual"] > config.residual_tol:  # sound or silent
        reason = (
            f"numerical trouble: a MIP's utilities disagree with the network by "
            f"{notes['residual']:.2e}"
        )
        claim, optimal = None, False
    if claim is None and reason is None:
        reason = "the solver returned no finite bound"
    stats = {
        **root.model.stats(),
        "unstable_relus": root.unstable,
        "relus": root.relus,
        "root_bound": root_bound if np.isfinite(root_bound) else None,
        "root_seconds": root_seconds,
        "cells": notes["cells"],
        "open_cells": len(heap),
    }
    why = "; ".join(r for r in (reason, notes["switch"]) if r) or None
    return SupportCertificate(
        agent,
        claim,
        found(),
        best["w"],
        optimal and claim is not None,
        time.perf_counter() - t0,
        "+".join(sorted(notes["solver"])),
        why,
        notes["residual"],
        stats,
    )
