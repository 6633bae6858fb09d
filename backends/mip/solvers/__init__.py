"""MIP solvers behind one ``solve(model, kind, options)``; Gurobi first, HiGHS as the fallback."""

from __future__ import annotations

import enum

from ..model import MipModel
from . import gurobi, highs
from .base import SolveResult, SolverOptions, SolveStatus


class SolverKind(enum.Enum):
    AUTO = "auto"  # Gurobi when installed and the model fits its licence, else HiGHS
    GUROBI = "gurobi"
    HIGHS = "highs"


def solve(
    model: MipModel, kind: SolverKind, options: SolverOptions, limited_licence: bool = True
) -> tuple[SolveResult, str | None]:
    """Solve; returns the result and, when AUTO fell back from Gurobi, the reason why.

    ``limited_licence`` (see ``gurobi.licence_is_limited``) enables the size check before build.
    """
    if kind is SolverKind.HIGHS:
        return highs.solve(model, options), None
    if not gurobi.available():
        if kind is SolverKind.GUROBI:
            return SolveResult(
                SolveStatus.ERROR, "gurobi", 0.0, reason="gurobipy is not installed"
            ), None
        return highs.solve(model, options), "gurobipy is not installed"
    result = gurobi.solve(model, options, limited_licence)
    if kind is SolverKind.AUTO and result.status is SolveStatus.TOO_LARGE:
        return highs.solve(model, options), result.reason
    return result, None


__all__ = ["SolveResult", "SolveStatus", "SolverKind", "SolverOptions", "solve"]
