"""Gurobi (gurobipy): SOS1 for complementarity, NonConvex bilinear equalities for IR payments.

The pip licence is size-limited (2,000 variables and 2,000 linear constraints; only 200
variables once a quadratic term is present) and says so only at ``optimize`` with error 10010.
We check the size first and report ``TOO_LARGE`` with the reason (what the licence refuses, never
what happens next: only ``solver auto`` switches, and says so); a 10010 at optimize is mapped to
the same status.
"""

from __future__ import annotations

import time

import numpy as np

from ..model import MipModel
from .base import SolveResult, SolverOptions, SolveStatus

NAME = "gurobi"
LIMIT_VARS, LIMIT_ROWS, LIMIT_QUAD_VARS = 2000, 2000, 200


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("gurobipy") is not None


def licence_is_limited() -> bool:
    """Probe once (a trivial model just over the variable limit): True for the pip licence."""
    import gurobipy as gp

    env = gp.Env(empty=True)
    env.setParam("OutputFlag", 0)
    env.start()
    m = gp.Model(env=env)
    try:
        m.addVars(LIMIT_VARS + 1)
        m.optimize()
        return False
    except gp.GurobiError as err:
        return err.errno == 10010
    finally:
        m.dispose()
        env.dispose()


def size_problem(model: MipModel, limited: bool = True) -> str | None:
    """Why the size-limited licence will refuse ``model``, or None."""
    if not limited:
        return None
    n, rows = model.n, len(model.rows)
    if model.bilinear and n > LIMIT_QUAD_VARS:
        return (
            f"Gurobi size-limited licence: {n} variables with bilinear terms "
            f"(limit {LIMIT_QUAD_VARS})"
        )
    if n > LIMIT_VARS or rows > LIMIT_ROWS:
        return (
            f"Gurobi size-limited licence: {n} variables / {rows} constraints "
            f"(limit {LIMIT_VARS} / {LIMIT_ROWS})"
        )
    return None


def solve(model: MipModel, options: SolverOptions, limited_licence: bool = True) -> SolveResult:
    import gurobipy as gp
    from gurobipy import GRB

    start = time.perf_counter()
    reason = size_problem(model, limited_licence)
    if reason is not None:
        return SolveResult(SolveStatus.TOO_LARGE, NAME, 0.0, reason=reason)
    env = gp.Env(empty=True)
    env.setParam("OutputFlag", 0)
    env.start()
    try:
        m = gp.Model(env=env)
        m.Params.Threads = options.threads
        m.Params.TimeLimit = options.time_limit
        m.Params.MIPGapAbs = options.mip_gap
        m.Params.MIPGap = 0.0
        m.Params.FeasibilityTol = max(options.feasibility_tol, 1e-9)
        m.Params.IntFeasTol = max(options.feasibility_tol, 1e-9)
        vtype = [GRB.BINARY if i else GRB.CONTINUOUS for i in model.integer]
        x = m.addVars(model.n, lb=model.lb, ub=model.ub, vtype=vtype)
        xs = [x[i] for i in range(model.n)]
        for idx, coef, lo, hi in model.rows:
            expr = gp.LinExpr(coef.tolist(), [xs[i] for i in idx])
            if lo == hi:
                m.addLConstr(expr, GRB.EQUAL, lo)
                continue
            if np.isfinite(lo):
                m.addLConstr(expr, GRB.GREATER_EQUAL, lo)
            if np.isfinite(hi):
                m.addLConstr(expr, GRB.LESS_EQUAL, hi)
        for i, j in model.complementarity:
            m.addSOS(GRB.SOS_TYPE1, [xs[i], xs[j]], [1, 2])
        for w, a, b in model.bilinear:
            m.addQConstr(xs[w] == xs[a] * xs[b])
        if model.bilinear:
            m.Params.NonConvex = 2
        if options.cutoff is not None:
            m.Params.Cutoff = options.cutoff
        m.setObjective(
            gp.LinExpr(model.objective.tolist(), xs) + model.objective_const, GRB.MAXIMIZE
        )
        m.optimize()
    except gp.GurobiError as err:
        status = SolveStatus.TOO_LARGE if err.errno == 10010 else SolveStatus.ERROR
        return SolveResult(
            status, NAME, time.perf_counter() - start, reason=f"GurobiError {err.errno}: {err}"
        )
    seconds = time.perf_counter() - start
    try:
        has_x = m.SolCount > 0
        sol = np.array([v.X for v in xs]) if has_x else None
        obj = m.ObjVal if has_x else float("nan")
        if m.Status == GRB.OPTIMAL:
            return SolveResult(SolveStatus.OPTIMAL, NAME, seconds, max(m.ObjBound, obj), obj, sol)
        if m.Status == GRB.CUTOFF:  # proven: no solution above the cutoff
            return SolveResult(SolveStatus.OPTIMAL, NAME, seconds, options.cutoff, obj, sol)
        if m.Status == GRB.TIME_LIMIT:
            return SolveResult(
                SolveStatus.TIME_LIMIT,
                NAME,
                seconds,
                m.ObjBound,
                obj,
                sol,
                reason=f"Gurobi time limit {options.time_limit}s, gap open",
            )
        if m.Status in (GRB.INFEASIBLE, GRB.INF_OR_UNBD):
            return SolveResult(SolveStatus.INFEASIBLE, NAME, seconds, reason="Gurobi: infeasible")
        return SolveResult(SolveStatus.ERROR, NAME, seconds, reason=f"Gurobi status {m.Status}")
    finally:
        m.dispose()
        env.dispose()
