"""What a solver returns, and the options every solver honours."""

from __future__ import annotations

import enum

import attrs
import numpy as np


class SolveStatus(enum.Enum):
    OPTIMAL = "optimal"  # proven within the gap tolerance: ``bound`` is a sound upper bound
    TIME_LIMIT = "time_limit"  # ``bound`` (if finite) is still sound, but the gap is open
    TOO_LARGE = "too_large"  # the licence or the solver cannot take this model
    INFEASIBLE = "infeasible"  # cannot happen for a correct formulation: treated as an error
    ERROR = "error"


@attrs.frozen
class SolverOptions:
    time_limit: float = 60.0
    mip_gap: float = 1e-6  # absolute gap on the utility
    feasibility_tol: float = 1e-9
    threads: int = 1
    #: prune at this objective (maximisation): a solve that proves the maximum is at most
    #: ``cutoff`` may stop there and return OPTIMAL with ``bound = cutoff`` (a sound upper
    #: bound, no solution); None: solve to optimality (Gurobi and SCIP honour it)
    cutoff: float | None = None


@attrs.frozen
class SolveResult:
    """``bound`` is the solver's best upper bound on the maximum; ``objective`` the incumbent's.

    ``relaxed`` is true when bilinear equalities were replaced by their McCormick relaxation:
    then ``bound`` is sound for the original problem but ``x`` may not satisfy it.
    """

    status: SolveStatus
    solver: str
    seconds: float
    bound: float = float("nan")
    objective: float = float("nan")
    x: np.ndarray | None = None
    relaxed: bool = False
    reason: str | None = None
