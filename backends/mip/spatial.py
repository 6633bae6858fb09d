"""Spatial branch and bound that closes the gap of the McCormick relaxation (HiGHS path).

A node narrows the bounds of some bilinear factors. Its relaxed MIP gives a sound upper bound on
the true maximum over the node (the McCormick envelope contains the product's graph); the
incumbent is the *network's* utility at the node's misreport, so every lower bound is real. We
branch on the factor of the most violated product, near the relaxed value, until the best open
bound is within ``gap`` of the incumbent. Every relaxation stays exact in the binaries, so this
converges as factor ranges shrink.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

import attrs
import numpy as np

from .model import MipModel
from .solvers import SolveResult, SolveStatus

SolveFn = Callable[[MipModel, float], SolveResult]  # (model, seconds left) -> result


@attrs.frozen
class SpatialResult:
    certified: bool
    bound: float  # sound upper bound on the maximum (inf if none)
    nodes: int
    reason: str | None = None


def _with_bounds(model: MipModel, lb: np.ndarray, ub: np.ndarray) -> MipModel:
    lb, ub = lb.copy(), ub.copy()
    for w, a, b in model.bilinear:  # the product's range from its factors' (never looser)
        corners = [x * y for x in (lb[a], ub[a]) for y in (lb[b], ub[b])]
        lb[w], ub[w] = max(lb[w], min(corners)), min(ub[w], max(corners))
        if lb[w] > ub[w]:
            lb[w] = ub[w] = (lb[w] + ub[w]) / 2  # float round-off on a point box
    return attrs.evolve(model, lb=lb.tolist(), ub=ub.tolist())


def _branch(model: MipModel, x: np.ndarray, lb: np.ndarray, ub: np.ndarray, root_range: np.ndarray):
    """The factor to split and where: the most violated product, its relatively widest factor."""
    viol = [abs(x[w] - x[a] * x[b]) for w, a, b in model.bilinear]
    k = int(np.argmax(viol))
    if viol[k] <= 1e-10:
        return None
    _, a, b = model.bilinear[k]
    rel = [(ub[v] - lb[v]) / max(root_range[v], 1e-12) for v in (a, b)]
    var = (a, b)[int(np.argmax(rel))]
    width = ub[var] - lb[var]
    return var, float(np.clip(x[var], lb[var] + 0.25 * width, ub[var] - 0.25 * width))


def spatial_branch_and_bound(
    model: MipModel,
    root: SolveResult,
    solve_fn: SolveFn,
    incumbent: Callable[[np.ndarray], float],
    gap: float,
    time_limit: float,
    max_nodes: int,
) -> SpatialResult:
    """Maximise exactly over the bilinear model; ``incumbent(x)`` is the true value at ``x``."""
    start = time.perf_counter()
    lb0, ub0 = np.array(model.lb), np.array(model.ub)
    root_range = ub0 - lb0
    best = incumbent(root.x)
    heap = [(-root.bound, 0, lb0, ub0, root.x)]
    nodes, counter = 1, 1
    while heap:
        neg_ub, _, lb, ub, x = heapq.heappop(heap)
        if -neg_ub <= best + gap:
            return SpatialResult(True, max(-neg_ub, best), nodes)
        choice = _branch(model, x, lb, ub, root_range)
        if choice is None:  # the relaxed optimum is feasible: its value is attained
            best = max(best, incumbent(x))
            if -neg_ub <= best + gap:
                return SpatialResult(True, max(-neg_ub, best), nodes)
            return SpatialResult(False, -neg_ub, nodes, "relaxation exact but incumbent differs")
        left = time_limit - (time.perf_counter() - start)
        if nodes >= max_nodes or left <= 0:
            reason = f"spatial branch and bound stopped after {nodes} nodes, gap open"
            return SpatialResult(False, -neg_ub, nodes, reason)
        var, split = choice
        for part in range(2):
            c_lb, c_ub = lb.copy(), ub.copy()
            if part == 0:
                c_ub[var] = split
            else:
                c_lb[var] = split
            res = solve_fn(_with_bounds(model, c_lb, c_ub), left)
            nodes += 1
            if res.status is SolveStatus.INFEASIBLE:
                continue  # the node is empty: nothing to bound
            if res.status is not SolveStatus.OPTIMAL:
                bound = max([-neg_ub] + [-h[0] for h in heap])
                return SpatialResult(False, bound, nodes, res.reason)
            best = max(best, incumbent(res.x))
            heapq.heappush(heap, (-res.bound, counter, c_lb, c_ub, res.x))
            counter += 1
    return SpatialResult(True, best, nodes)
