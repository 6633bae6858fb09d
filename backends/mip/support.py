"""The worst-case regret over the whole bid support, one agent at a time (issue 22).

Eq. 4.1 is the regret at one profile; the chapter certifies it at sampled profiles. A mechanism's
claim "regret at most r" is about every profile: the agent's true values ``v``, its misreport
``b`` and the other bidders' bids ``o`` all range over the support, and the certificate bounds
``max u_i(b, o; v) - u_i(v, o; v)``.

The space of (values, other bids) is split best-first into cells. A cell is bounded through the
menu's convexity (``corners.py``, the default): one-copy MIPs at the corners of its values (the
chapter's per-profile MIP; with one bidder shared by neighbouring cells) and over each simplex
of its values (the truthful utility against the corners' interpolant), each with big-M constants
from its own small box. Cells narrower than ``SupportSearch.joint_width`` are closed by the joint
MIP (``formulate_support``: two copies of the network, at ``(v, o)`` and ``(b, o)``, the values
as variables; bilinear in ``a(b) . v``), which is exact. The joint MIP over the whole support is
what the search started from before the corner bound (``CellBound.JOINT``, kept for
comparison): its relaxation relaxes both copies over the whole support at once and is loose.

Sound or silent: the largest bound over the open cells (they cover the support) is reported
whenever the search stops, with its gap to the best regret found (points evaluated by the
network). Only a cell with no finite bound, or a MIP whose solution disagrees with the network,
voids the claim.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import time

import attrs
import numpy as np
import torch

from .certify import CertifyConfig
from .corners import corner_model, simplex_model, triangulation, truthful_utility
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

    def others_grid(self, per_side: int) -> list[Cell]:
        """The cell with each other bid's range cut into ``per_side`` equal parts."""
        lo, hi = self.others_lo.reshape(-1), self.others_hi.reshape(-1)
        edges = [np.linspace(a, b, per_side + 1) for a, b in zip(lo, hi, strict=True)]
        out = []
        for idx in itertools.product(range(per_side), repeat=len(lo)):
            o_lo = np.array([e[i] for e, i in zip(edges, idx, strict=True)])
            o_hi = np.array([e[i + 1] for e, i in zip(edges, idx, strict=True)])
            shape = self.others_lo.shape
            out.append(
                attrs.evolve(self, others_lo=o_lo.reshape(shape), others_hi=o_hi.reshape(shape))
            )
        return out

    def widths(self) -> np.ndarray:
        """The widths of the values' and the other bids' sides (the sides a search splits)."""
        lo, hi = self._flat()
        return (hi - lo)[: len(self.values_lo) + self.others_lo.size]

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


class CellBound(enum.Enum):
    """How a cell of (true values, other bids) is bounded."""

    #: one-copy MIPs through the menu's convexity in the values (``corners.py``)
    CORNERS = "corners"
    #: one MIP with both copies of the network and the values as variables
    JOINT = "joint"


@attrs.frozen
class SupportSearch:
    """How the support is searched. Cells of (true values, other bids) are split best-first on
    their bound (the widest side first). ``CORNERS`` bounds a cell by one-copy MIPs (each at
    most ``cell_limit`` s, absolute gap ``mip_gap``: only their bounds count); cells narrower
    than ``joint_width`` are closed by the joint MIP, which is exact. ``JOINT`` gives the
    whole-support MIP ``root_share`` of the time limit, then bounds every cell by joint MIPs
    (the search before the corner bound; kept for comparison)."""

    method: CellBound = CellBound.CORNERS
    root_share: float = 0.1
    cell_limit: float = 10.0
    max_cells: int = 4096
    joint_width: float = 1.0 / 64
    mip_gap: float = 1e-4
    others_split: int = 2  # CORNERS: the other bids' first grid, per side


def _samples(mech: Mechanism, agent: int, cell: Cell, per_side: int = 5):
    """Points of the cell (values, then other bids flattened) and the truthful utility there."""
    lo = np.concatenate([cell.values_lo, cell.others_lo.reshape(-1)])
    hi = np.concatenate([cell.values_hi, cell.others_hi.reshape(-1)])
    axes = [np.linspace(a, b, per_side) for a, b in zip(lo, hi, strict=True)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(lo))
    items = len(cell.values_lo)
    others = pts[:, items:].reshape(len(pts), -1, items)
    return pts, truthful_utility(mech, agent, pts[:, :items], others)


def _estimate(simplices, lo, hi, heights, pts, u_t, h) -> float:
    """The simplex bound estimated at sample points (to choose the triangulation)."""
    items, worst = len(lo), -np.inf
    for simplex in simplices:
        inside = simplex.contains(lo, hi, pts[:, :items])
        if not inside.any():
            continue
        w, c = simplex.interpolant(lo, hi, [heights[b] for b in simplex.vertex_bits()])
        p = pts[inside]
        worst = max(worst, float((p[:, :items] @ w + c + p[:, items:] @ h - u_t[inside]).max()))
    return worst


class _Search:
    """The state of one agent's search: the best point found, the corner MIPs already solved
    (with one bidder they do not depend on the cell), and what the solvers reported."""

    def __init__(self, mech, agent, low, high, config, limited, start, search, deadline):
        self.mech, self.agent, self.low, self.high = mech, agent, low, high
        self.config, self.limited, self.search, self.deadline = config, limited, search, deadline
        self.best: Witness | None = start
        self.layers = float_layers(mech)
        self.corner_cache: dict[tuple, float] = {}
        self.others_slopes: dict[tuple, np.ndarray] = {}
        self.switch: str | None = None
        self.solvers: set[str] = set()
        self.residual = float("nan")
        self.mips: dict[str, int] = {}
        self.mip_seconds: dict[str, float] = {}
        self.relaxed = False
        self.joint_stats: dict = {}

    def found(self) -> float:
        return 0.0 if self.best is None else max(self.best.regret, 0.0)

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def _offer(self, v, b, o) -> None:
        t = torch.from_numpy
        v, b, o = (np.clip(np.asarray(x, float), self.low, self.high) for x in (v, b, o))
        r = float(regret_at_points(self.mech, self.agent, t(v)[None], t(b)[None], t(o)[None])[0])
        if self.best is None or r > self.best.regret:
            self.best = Witness(v, b, o, r)

    def _note_residual(self, r: float) -> None:
        self.residual = max(np.nan_to_num(self.residual), r)

    def _solve(
        self, kind: str, model: MipModel, seconds: float, gap: float, cutoff: float | None = None
    ):
        opts = SolverOptions(
            time_limit=max(1e-3, seconds), mip_gap=gap, threads=self.config.threads, cutoff=cutoff
        )
        res, why = solve(model, self.config.solver, opts, self.limited)
        self.switch = self.switch or why
        self.solvers.add(res.solver)
        self.mips[kind] = self.mips.get(kind, 0) + 1
        self.mip_seconds[kind] = self.mip_seconds.get(kind, 0.0) + res.seconds
        self.relaxed = self.relaxed or res.relaxed
        ok = res.status in (SolveStatus.OPTIMAL, SolveStatus.TIME_LIMIT)
        bound = res.bound if ok and np.isfinite(res.bound) else float("inf")
        if cutoff is not None:  # nodes pruned at the cutoff may hold values up to it
            bound = max(bound, cutoff)
        if res.status is SolveStatus.OPTIMAL and not res.relaxed and res.x is not None:
            bound = max(bound, res.objective)
        return res, bound

    def _seconds(self) -> float:
        return min(self.search.cell_limit, self.left())

    def joint(self, cell: Cell | None, seconds: float, cutoff: float | None = None) -> float:
        """A sound upper bound on the regret over the cell by the joint MIP (inf: none)."""
        form = formulate_support(
            self.mech, self.agent, self.low, self.high, self.config.bounds, cell
        )
        if not self.joint_stats:
            self.joint_stats = {
                **form.model.stats(),
                "unstable_relus": form.unstable,
                "relus": form.relus,
            }
        if cell is not None and self._fast_refuses(form.model):
            return float("inf")
        res, bound = self._solve("joint", form.model, seconds, self.config.gap, cutoff)
        if res.x is not None:
            x = res.x
            self._offer(x[form.values], x[form.misreport], x[form.others])
            if not res.relaxed:
                w = _witness(self.mech, self.agent, form, x, self.low, self.high)
                self._note_residual(_residual(self.mech, self.agent, form, x, w))
        return bound

    def _fast_refuses(self, model: MipModel) -> bool:
        """`solver auto` with Gurobi's size-limited licence: joint cells too big for it are
        split further rather than handed to the slower exact solver."""
        if self.config.solver is not SolverKind.AUTO or not gurobi.available():
            return False
        return gurobi.size_problem(model, self.limited) is not None

    def corners(self, cell: Cell) -> float:
        """A sound upper bound on the regret over the cell through the menu's convexity
        (``corners.py``): the corner MIPs' bounds interpolated over each simplex of the
        cell's values, minus the truthful utility, maximised by one MIP per simplex."""
        mech, agent = self.mech, self.agent
        lo, hi = cell.values_lo, cell.values_hi
        o_lo, o_hi = cell.others_lo, cell.others_hi
        pts, u_t = _samples(mech, agent, cell)
        items = len(lo)
        o_key = (tuple(o_lo.reshape(-1)), tuple(o_hi.reshape(-1)))
        if o_key not in self.others_slopes:  # a least-squares plane through u_T, fixed per
            h = np.zeros(o_lo.size)  # box of other bids so that cells split along the values
            if o_lo.size:  # share their corner MIPs
                design = np.concatenate([pts, np.ones((len(pts), 1))], axis=1)
                h = np.linalg.lstsq(design, u_t, rcond=None)[0][items:-1]
            self.others_slopes[o_key] = h
        h = self.others_slopes[o_key]
        heights = {}
        for bits in itertools.product((False, True), repeat=items):
            c = np.where(bits, hi, lo)
            heights[bits] = self._corner(c, cell, h)
            if not np.isfinite(heights[bits]) or self.left() <= 0:
                return float("inf")
        flip = min(
            ((False, *rest) for rest in itertools.product((False, True), repeat=items - 1)),
            key=lambda f: _estimate(triangulation(items, f), lo, hi, heights, pts, u_t, h),
        )
        worst = -np.inf
        cutoff = self.found() + self.config.branch_gap
        for simplex in triangulation(items, flip):
            ys = [heights[b] for b in simplex.vertex_bits()]
            cp, u_expr = simplex_model(
                mech, self.layers, agent, lo, hi, o_lo, o_hi, simplex, ys, h, self.config.bounds
            )
            res, bound = self._solve(
                "simplex", cp.model, self._seconds(), self.search.mip_gap, cutoff
            )
            if res.x is not None and not res.relaxed:
                x = res.x
                net = truthful_utility(mech, agent, x[cp.own][None], x[cp.others][None])[0]
                self._note_residual(abs(float(u_expr.value(x)[0]) - float(net)))
            worst = max(worst, bound)
            if not np.isfinite(worst):
                return float("inf")
        return worst

    def _corner(self, c: np.ndarray, cell: Cell, h: np.ndarray) -> float:
        key = (tuple(c), tuple(cell.others_lo.reshape(-1)), tuple(cell.others_hi.reshape(-1)))
        key += tuple(h)
        if key in self.corner_cache:
            return self.corner_cache[key]
        mech, agent = self.mech, self.agent
        cp, util = corner_model(
            mech, self.layers, agent, c, self.low, self.high,
            cell.others_lo, cell.others_hi, h, self.config.bounds,
        )  # fmt: skip
        res, bound = self._solve("corner", cp.model, self._seconds(), self.search.mip_gap)
        if res.x is not None:
            x = res.x
            self._offer(c, x[cp.own], x[cp.others])
            if not res.relaxed:
                t = torch.from_numpy
                b, o = (np.clip(x[i], self.low, self.high) for i in (cp.own, cp.others))
                rows = list(t(o).unbind(0))
                lie = torch.stack(rows[:agent] + [t(b)] + rows[agent:])[None]
                truth = torch.stack(rows[:agent] + [t(c)] + rows[agent:])[None]
                with torch.no_grad():
                    u, _, _ = utilities(mech, lie, truth)
                self._note_residual(abs(float(util.value(x)[0]) - float(u[0, agent])))
        if np.isfinite(bound) or self.left() > 0:
            self.corner_cache[key] = bound
        return bound

    def bound(self, cell: Cell, parent: float) -> float:
        """The cell's bound by the configured method (never above its parent's: a subset)."""
        cutoff = self.found() + self.config.branch_gap
        if self.search.method is CellBound.JOINT:
            return min(parent, self.joint(cell, self._seconds(), cutoff))
        if max(cell.widths()) <= self.search.joint_width:
            return min(parent, self.joint(cell, self._seconds(), cutoff))
        return min(parent, self.corners(cell))


def cell_regret_bound(
    mech: Mechanism,
    agent: int,
    low: float,
    high: float,
    cell: Cell,
    config: CertifyConfig,
    search: SupportSearch = SupportSearch(),
    limited_licence: bool = True,
) -> float:
    """The search's bounding step alone: a sound upper bound on the agent's regret over one
    cell (inf when a solver gave none), by ``search.method`` (the soundness tests hold it to a
    dense grid cell by cell)."""
    deadline = time.perf_counter() + config.time_limit
    st = _Search(mech, agent, low, high, config, limited_licence, None, search, deadline)
    return st.bound(cell, float("inf"))


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

    The space of true values and other bids is split best-first into cells (see
    ``SupportSearch``); every cell keeps its parent's bound until its own is proven, so the
    largest bound over the open cells (they cover the support) is a sound upper bound whenever
    the search stops."""
    t0 = time.perf_counter()
    st = _Search(
        mech, agent, low, high, config, limited_licence, start, search, t0 + config.time_limit
    )
    cfg = mech.config
    whole = Cell.whole(cfg.agents, cfg.items, low, high)
    if search.method is CellBound.JOINT:
        root_bound = st.joint(None, config.time_limit * search.root_share)
        heap = [(-root_bound, 0, whole)]
    else:  # the others' bids on a grid first: one-copy MIPs over their whole range are slow
        heap = []
        for k, cell in enumerate(whole.others_grid(search.others_split)):
            heap.append((-(st.bound(cell, np.inf) if st.left() > 0 else np.inf), k, cell))
        heapq.heapify(heap)
        root_bound = -heap[0][0]
    root_seconds = time.perf_counter() - t0
    counter, reason, cells = len(heap), None, len(heap)
    while heap:
        top = -heap[0][0]
        if top <= st.found() + config.branch_gap:
            break
        if st.left() <= 0 or cells >= search.max_cells:
            limit = f"time limit {config.time_limit:g}s" if st.left() <= 0 else "cell limit"
            reason = f"{limit}: {len(heap)} cells open"
            break
        _, _, cell = heapq.heappop(heap)
        joint = search.method is CellBound.JOINT or max(cell.widths()) <= search.joint_width
        for child in cell.split(misreport=joint and st.relaxed):
            bound = st.bound(child, top) if st.left() > 0 else top
            cells += 1
            if bound > st.found() + config.branch_gap:
                heapq.heappush(heap, (-bound, counter, child))
                counter += 1
    found = st.found()
    bound = max([-h[0] for h in heap] + [found])
    optimal = bound <= found + config.branch_gap
    claim: float | None = max(bound, 0.0) + 0.0 if np.isfinite(bound) else None
    if claim is not None and st.residual > config.residual_tol:  # sound or silent
        reason = (
            f"numerical trouble: a MIP's utilities disagree with the network by {st.residual:.2e}"
        )
        claim, optimal = None, False
    if claim is None and reason is None:
        reason = "the solver returned no finite bound"
    stats = {
        **st.joint_stats,
        "method": search.method.value,
        "root_bound": root_bound if np.isfinite(root_bound) else None,
        "root_seconds": root_seconds,
        "cells": cells,
        "open_cells": len(heap),
        "mips": st.mips,
        "mip_seconds": {k: round(v, 1) for k, v in st.mip_seconds.items()},
        "top_cells": [
            (round(-b, 5), c.values_lo.tolist(), c.values_hi.tolist())
            for b, _, c in heapq.nsmallest(3, heap)
        ],
    }
    why = "; ".join(r for r in (reason, st.switch) if r) or None
    return SupportCertificate(
        agent,
        claim,
        found,
        st.best,
        optimal and claim is not None,
        time.perf_counter() - t0,
        "+".join(sorted(st.solvers)),
        why,
        st.residual,
        stats,
    )
