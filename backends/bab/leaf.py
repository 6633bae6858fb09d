"""Exact decisions on leaves: a domain whose ReLU phases are all fixed (split or stable) is an
affine network on a polytope (the box and the phase constraints), so whether a term of the
property's negation can hold there is a linear program (HiGHS). This keeps ReLU splitting
complete, and decides input-split boxes where every ReLU is stable in one step."""

from __future__ import annotations

import importlib.util

import numpy as np

from .problem import Problem


def available() -> bool:
    return importlib.util.find_spec("highspy") is not None


#: every LP row is loosened by this much: "infeasible" then holds with room to spare, so solver
#: tolerances cannot turn a thin unsafe region into a proof
SLACK = 1e-6


def feasible_point(
    a: np.ndarray,
    c: np.ndarray,
    phases: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    g: np.ndarray,
    s: np.ndarray,
) -> tuple[bool, np.ndarray | None]:
    """Is there x in [lo, hi] with the phases (rows of `a`, `c` before the last `outputs`:
    +1 -> pre >= 0, -1 -> pre <= 0) and `g @ y <= s` for every row? (feasible, a point)."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    d = len(lo)
    inf = highspy.kHighsInf
    for i in range(d):
        h.addVar(float(lo[i]), float(hi[i]))
    n_pre = len(phases)
    idx = np.arange(d, dtype=np.int32)
    for k in range(n_pre):
        if phases[k] > 0:
            h.addRow(float(-c[k] - SLACK), inf, d, idx, a[k].astype(np.float64))
        elif phases[k] < 0:
            h.addRow(-inf, float(-c[k] + SLACK), d, idx, a[k].astype(np.float64))
    ay, cy = a[n_pre:], c[n_pre:]
    for row, rhs in zip(g, s, strict=True):
        bound = rhs - row @ cy + SLACK * max(1.0, abs(rhs))
        h.addRow(-inf, float(bound), d, idx, (row @ ay).astype(np.float64))
    return solve_feasibility(h, d)


def solve_feasibility(h, d: int) -> tuple[bool, np.ndarray | None]:
    """Run a built HiGHS feasibility LP: (False, None) when infeasible, (True, x) with the
    first `d` columns of a feasible point, or (True, None) for anything else (not decided:
    the caller keeps the domain open)."""
    import highspy

    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    if status == "Not Set":  # another HiGHS user changed the process-wide thread count
        highspy.Highs.resetGlobalScheduler(True)
        h.run()
        status = h.modelStatusToString(h.getModelStatus())
    if status == "Infeasible":
        return False, None
    if status == "Optimal":
        return True, np.array(h.getSolution().col_value[:d], dtype=np.float64)
    return True, None


def exact_for(net) -> bool:
    """Is the network affine once its ReLU phases are fixed (only affine ops besides the
    ReLUs)? Only then is a leaf an LP: a max pool or a sigmoid is not linear on the leaf, and
    the pieces taken at x = 0 are not the network elsewhere (a max-pool CNN's LP was wrong)."""
    from threatlang.bounds.nonlinear import BoundReLU

    return all(op.affine or isinstance(op, BoundReLU) for op in net.ops)


def decide(net, problem: Problem, masks, phases, lo, hi, open_terms) -> tuple[np.ndarray, list]:
    """For one leaf: which of its open terms are infeasible (bool per term), and candidate
    counterexample points from the feasible ones. Nothing is closed on a network that is not
    piecewise affine in its ReLUs (`exact_for`): the search bisects those leaves instead."""
    import torch

    if not exact_for(net):
        return np.zeros(problem.terms, dtype=bool), []
    a, c = net.linear_pieces(tuple(torch.from_numpy(m) for m in masks))
    a, c = a.numpy(), c.numpy()
    closed = np.zeros(problem.terms, dtype=bool)
    points = []
    for t in np.flatnonzero(open_terms):
        rows = problem.member[t]
        ok, x = feasible_point(a, c, phases, lo, hi, problem.g[rows], problem.s[rows])
        if not ok:
            closed[t] = True
        elif x is not None:
            points.append(x)
    return closed, points
