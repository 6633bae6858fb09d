"""SCIP (pyscipopt, Apache 2.0): the open-source path for the exact bilinear (IR payment) MIP.

SCIP takes SOS1 constraints for complementarity and solves nonconvex quadratic equalities to
global optimality by its own spatial branch and bound, so, unlike HiGHS, no relaxation is left
for us to close. ``gaplimit`` (the absolute gap reached) counts as proven optimal.
"""

from __future__ import annotations

import time

import numpy as np

from ..model import MipModel
from .base import SolveResult, SolverOptions, SolveStatus

NAME = "scip"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyscipopt") is not None


def solve(model: MipModel, options: SolverOptions) -> SolveResult:
    from pyscipopt import Model, quicksum

    start = time.perf_counter()
    m = Model()
    m.hideOutput()
    m.setParam("limits/time", float(options.time_limit))
    m.setParam("limits/absgap", options.mip_gap)
    m.setParam("limits/gap", 0.0)
    m.setParam(
        "numerics/feastol", max(options.feasibility_tol, 1e-8)
    )  # LP tolerances scale below it
    m.setParam("randomization/randomseedshift", 0)
    xs = [
        m.addVar(lb=lo, ub=hi, vtype="B" if integer else "C")
        for lo, hi, integer in zip(model.lb, model.ub, model.integer, strict=True)
    ]
    for idx, coef, lo, hi in model.rows:
        expr = quicksum(float(c) * xs[i] for i, c in zip(idx, coef, strict=True))
        if lo == hi:
            m.addCons(expr == lo)
            continue
        if np.isfinite(lo):
            m.addCons(expr >= lo)
        if np.isfinite(hi):
            m.addCons(expr <= hi)
    for i, j in model.complementarity:
        m.addConsSOS1([xs[i], xs[j]])
    for w, a, b in model.bilinear:
        m.addCons(xs[w] == xs[a] * xs[b])
    m.setObjective(
        quicksum(float(c) * x for c, x in zip(model.objective, xs, strict=True) if c), "maximize"
    )
    m.addObjoffset(model.objective_const)
    if options.cutoff is not None:
        m.setObjlimit(options.cutoff)
    m.optimize()
    seconds = time.perf_counter() - start
    status = m.getStatus()
    has_x = m.getNSols() > 0
    x = np.array([m.getVal(v) for v in xs]) if has_x else None
    obj = m.getObjVal() if has_x else float("nan")
    bound = m.getDualbound()
    if abs(bound) >= m.infinity():  # SCIP's "no bound yet" is 1e+20: say inf
        bound = float("inf") if bound > 0 else float("-inf")
    if status in ("optimal", "gaplimit"):
        return SolveResult(SolveStatus.OPTIMAL, NAME, seconds, max(bound, obj), obj, x)
    if status == "timelimit":
        reason = f"SCIP time limit {options.time_limit:g}s, gap open"
        return SolveResult(SolveStatus.TIME_LIMIT, NAME, seconds, bound, obj, x, reason=reason)
    if status == "infeasible" and options.cutoff is not None:  # nothing above the objective limit
        return SolveResult(SolveStatus.OPTIMAL, NAME, seconds, options.cutoff, obj, x)
    if status == "infeasible":
        return SolveResult(SolveStatus.INFEASIBLE, NAME, seconds, reason="SCIP: infeasible")
    return SolveResult(SolveStatus.ERROR, NAME, seconds, reason=f"SCIP status {status}")
