"""Option classes for the `mip` backend's actions (bound from spec options; no torch here)."""

from __future__ import annotations

import enum

import attrs

from threatlang.backends.choices import Solver


class Bounds(enum.Enum):
    """How the big-M constants are computed (mirrors ``bounds.BoundMethod`` without torch)."""

    INTERVAL = "interval"
    LINEAR = "linear"


@attrs.frozen
class RegretNetTrainOptions:
    """`train regretnet { ... }`: augmented Lagrangian (§4.6.1) and the certification aids."""

    misreport_steps: int = 25
    misreport_lr: float = 0.02
    lambda_init: float = 5.0
    rho: float = 1.0
    rho_increment: float = 0.0
    stability: float = 0.0  # weight of the ReLU-stability regulariser -tanh(1 + u l) (§4.3.3)
    distill: bool = False  # free payments: first train a softmax RegretNet teacher, then distil
    distill_weight: float = 1.0
    teacher_epochs: int | None = None  # defaults to the student's epochs


@attrs.frozen
class MipCertifyOptions:
    """`certify mip { ... }`. `time_limit` and `threads` here are the defaults the plan resolves
    when the action's own `time_limit` / `threads` fields are absent."""

    solver: Solver = Solver.AUTO
    time_limit: float = 60.0  # seconds per MIP; a time-out is `unknown`
    threads: int = 1
    bounds: Bounds = Bounds.LINEAR
    gap: float = 1e-6  # absolute optimality gap of each MIP on the utility
    branch_gap: float = 1e-4  # absolute gap closing spatial branching (HiGHS, IR payments)
    max_nodes: int = 400


@attrs.frozen
class ValuationOptions:
    """`data valuations { ... }`: profiles for revenue and PGD regret (more than are certified)."""

    eval_profiles: int = 1000
