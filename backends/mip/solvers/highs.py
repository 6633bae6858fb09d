"""HiGHS (open source, MIT): the pure-MILP path.

HiGHS has no SOS1 and no bilinear terms: a complementarity pair ``x * y = 0`` becomes a binary
``s`` with ``x <= ub_x s`` and ``y <= ub_y (1 - s)`` (both variables are non-negative with finite
upper bounds in our formulation), and ``w = x * y`` becomes its McCormick envelope, which makes
the result ``relaxed``: its bound is sound, and the caller closes the gap by branching on the box.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from ..model import MipModel
from .base import SolveResult, SolverOptions, SolveStatus

NAME = "highs"


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("highspy") is not None


def _linearised(model: MipModel) -> tuple[list, list, list, list]:
    lb, ub, integer = list(model.lb), list(model.ub), list(model.integer)
    rows = list(model.rows)
    for x, y in model.complementarity:
        if lb[x] < 0 or lb[y] < 0 or not np.isfinite(ub[x] + ub[y]):
            raise ValueError("complementarity needs non-negative, bounded variables")
        lb.append(0.0), ub.append(1.0), integer.append(True)
        s = len(lb) - 1
        rows.append((np.array([x, s]), np.array([1.0, -ub[x]]), -np.inf, 0.0))
        rows.append((np.array([y, s]), np.array([1.0, ub[y]]), -np.inf, ub[y]))
    for w, x, y in model.bilinear:  # McCormick: the convex hull of w = x y on the box
        xl, xu, yl, yu = lb[x], ub[x], lb[y], ub[y]
        rows.append((np.array([w, x, y]), np.array([1.0, -yl, -xl]), -xl * yl, np.inf))
        rows.append((np.array([w, x, y]), np.array([1.0, -yu, -xu]), -xu * yu, np.inf))
        rows.append((np.array([w, x, y]), np.array([1.0, -yl, -xu]), -np.inf, -xu * yl))
        rows.append((np.array([w, x, y]), np.array([1.0, -yu, -xl]), -np.inf, -xl * yu))
    return lb, ub, integer, rows


def _silenced_banner() -> None:
    """HiGHS prints its copyright banner to the process's stdout (C level, once per process)
    when the first solver object is built: build that one with fd 1 sent to /dev/null."""
    global _BANNER_DONE
    if _BANNER_DONE:
        return
    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_DONE = True


_BANNER_DONE = False


def solve(model: MipModel, options: SolverOptions) -> SolveResult:
    import highspy

    _silenced_banner()
    start = time.perf_counter()
    lb, ub, integer, rows = _linearised(model)
    n = len(lb)
    # HiGHS keeps one process-wide thread scheduler sized by the first run; a later run with
    # another `threads` value then returns "Not Set" without solving. Reset it for each solve.
    highspy.Highs.resetGlobalScheduler(True)
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", options.threads)
    h.setOptionValue("time_limit", float(options.time_limit))
    h.setOptionValue("mip_abs_gap", options.mip_gap)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_feasibility_tolerance", options.feasibility_tol)
    h.setOptionValue("primal_feasibility_tolerance", options.feasibility_tol)
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = n, len(rows)
    obj = np.zeros(n)
    obj[: model.n] = model.objective
    lp.col_cost_ = obj
    lp.col_lower_ = np.array(lb)
    lp.col_upper_ = np.array(ub)
    lp.offset_ = model.objective_const
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.row_lower_ = np.array([max(r[2], -inf) for r in rows])
    lp.row_upper_ = np.array([min(r[3], inf) for r in rows])
    starts, index, value = [0], [], []
    for idx, coef, _, _ in rows:
        index.extend(idx.tolist())
        value.extend(coef.tolist())
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value)
    if any(integer):
        lp.integrality_ = [
            highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
            for i in integer
        ]
    h.passModel(lp)
    h.run()
    seconds = time.perf_counter() - start
    status = h.getModelStatus()
    info = h.getInfo()
    relaxed = bool(model.bilinear)
    if status == highspy.HighsModelStatus.kOptimal:
        x = np.array(h.getSolution().col_value)[: model.n]
        bound = info.mip_dual_bound if any(integer) else info.objective_function_value
        obj_val = info.objective_function_value
        return SolveResult(
            SolveStatus.OPTIMAL, NAME, seconds, max(bound, obj_val), obj_val, x, relaxed
        )
    if status == highspy.HighsModelStatus.kInfeasible:
        return SolveResult(SolveStatus.INFEASIBLE, NAME, seconds, reason="HiGHS: infeasible")
    if status in (highspy.HighsModelStatus.kTimeLimit, highspy.HighsModelStatus.kIterationLimit):
        bound = info.mip_dual_bound if any(integer) else float("inf")
        has_x = info.primal_solution_status == 2
        x = np.array(h.getSolution().col_value)[: model.n] if has_x else None
        obj_val = info.objective_function_value if has_x else float("nan")
        return SolveResult(
            SolveStatus.TIME_LIMIT,
            NAME,
            seconds,
            bound,
            obj_val,
            x,
            relaxed,
            reason=f"HiGHS time limit {options.time_limit}s, gap open",
        )
    return SolveResult(
        SolveStatus.ERROR, NAME, seconds, reason=f"HiGHS status {h.modelStatusToString(status)}"
    )
