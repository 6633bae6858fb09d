"""MIP solvers behind one ``solve(model, kind, options)``.

AUTO: Gurobi when installed and the model fits its licence; otherwise SCIP for models with
bilinear terms (exact global solves) when pyscipopt is installed, and HiGHS for the rest (and
for bilinear models without SCIP: McCormick relaxation, closed by spatial branching upstream).
"""

from __future__ import annotations

import enum

import attrs

from ..model import MipModel
from . import gurobi, highs, scip
from .base import SolveResult, SolverOptions, SolveStatus


class SolverKind(enum.Enum):
    AUTO = "auto"
    GUROBI = "gurobi"
    HIGHS = "highs"
    SCIP = "scip"


def _open_source(model: MipModel, options: SolverOptions) -> SolveResult:
    if model.bilinear and scip.available():
        return scip.solve(model, options)
    return highs.solve(model, options)


def _missing(name: str) -> SolveResult:
    return SolveResult(SolveStatus.ERROR, name, 0.0, reason=f"{name} is not installed")


def solve(
    model: MipModel, kind: SolverKind, options: SolverOptions, limited_licence: bool = True
) -> tuple[SolveResult, str | None]:
    """Solve; returns the result and, when AUTO switched away from Gurobi, a sentence saying
    why and to which solver (None when nothing switched).

    ``limited_licence`` (see ``gurobi.licence_is_limited``) enables the size check before build.
    An explicit ``gurobi`` never switches: a model over the licence is ``TOO_LARGE`` (unknown).
    """
    if kind is SolverKind.HIGHS:
        return highs.solve(model, options), None
    if kind is SolverKind.SCIP:
        return (scip.solve(model, options) if scip.available() else _missing("pyscipopt")), None
    if not gurobi.available():
        if kind is SolverKind.GUROBI:
            return _missing("gurobipy"), None
        result = _open_source(model, options)
        return result, f"gurobipy is not installed; solved with {result.solver}"
    result = gurobi.solve(model, options, limited_licence)
    if result.status is SolveStatus.TOO_LARGE:
        if kind is SolverKind.AUTO:
            switched = _open_source(model, options)
            return switched, f"{result.reason}; switched to {switched.solver}"
        reason = f"{result.reason}; `solver gurobi` does not switch (`solver auto` would)"
        return attrs.evolve(result, reason=reason), None
    return result, None


__all__ = ["SolveResult", "SolveStatus", "SolverKind", "SolverOptions", "solve"]
