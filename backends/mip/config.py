"""Option classes for the `mip` backend's model, data and actions (their field defaults are the
option defaults `compile` resolves into the plan; no torch here)."""

from __future__ import annotations

import enum

import attrs

from threatlang.backends.choices import Solver

_pos = attrs.validators.gt(0)
_nonneg = attrs.validators.ge(0)


class Bounds(enum.Enum):
    """How the big-M constants are computed (mirrors ``bounds.BoundMethod`` without torch)."""

    INTERVAL = "interval"
    LINEAR = "linear"


class Payment(enum.Enum):
    """``fractional``: a fraction of the allocation's value at the bids (IR by construction,
    bilinear MIP); ``free``: any payment, IR only through the training penalty (linear MIP)."""

    FRACTIONAL = "fractional"
    FREE = "free"


class Objective(enum.Enum):
    """What the revenue term of the training loss counts. ``lagrangian``: the payments at the
    truthful bids (eq. 4.2, the chapter's); ``menu``: the payments when each bidder
    best-responds over the network's menu (a grid of bids, the truthful bid and the outside
    option), with a softmax best response at temperature ``menu_temperature`` so it is
    differentiable; the regret multiplier terms of eq. 4.2 stay."""

    LAGRANGIAN = "lagrangian"
    MENU = "menu"


@attrs.frozen
class RegretNetModelOptions:
    """`model regretnet { hidden 128 layers 1 payment fractional }` (§4.6.1: 128-unit layers,
    one for 1x2 and two for 2x2)."""

    hidden: int = attrs.field(default=128, validator=_pos)
    layers: int = attrs.field(default=1, validator=_pos)
    payment: Payment = Payment.FRACTIONAL
    #: free payments: clip at 0 after training (§4.3.2; Table 4.3) or not (Table 4.2)
    clip_payments: bool = True


@attrs.frozen
class RegretNetTrainOptions:
    """`train regretnet { ... }`: augmented Lagrangian (§4.6.1) and the certification aids."""

    misreport_steps: int = attrs.field(default=25, validator=_pos)
    misreport_lr: float = attrs.field(default=0.02, validator=_pos)
    #: also start each batch's misreport ascent from the best of a grid of this many bids per
    #: bidder (0: off, the chapter's plain ascent from the truthful bid)
    misreport_grid: int = attrs.field(default=0, validator=_nonneg)
    lambda_init: float = 5.0
    rho: float = attrs.field(default=1.0, validator=_nonneg)
    rho_increment: float = attrs.field(default=0.0, validator=_nonneg)
    stability: float = attrs.field(default=0.0, validator=_nonneg)  # -tanh(1 + u l), §4.3.3
    distill: bool = False  # free payments: first train a softmax RegretNet teacher, then distil
    distill_weight: float = attrs.field(default=1 / 400, validator=_nonneg)  # §4.6.1, on the MSE
    teacher_epochs: int | None = attrs.field(  # the plan resolves None to the student's epochs
        default=None, validator=attrs.validators.optional(_pos)
    )
    #: the revenue the loss maximises (menu: issue 22's alternative to the chapter's)
    objective: Objective = Objective.LAGRANGIAN
    menu_grid: int = attrs.field(default=1024, validator=attrs.validators.ge(4))
    menu_temperature: float = attrs.field(default=0.005, validator=_pos)
    #: learning rate divided by 10 from this fraction of the steps on (1.0: constant)
    lr_decay_at: float = attrs.field(default=1.0, validator=[_pos, attrs.validators.le(1.0)])


@attrs.frozen
class MisreportOptions:
    """`attack misreport { steps N step_size A restarts R grid G }`: PGD regret (the chapter's
    empirical regret) and the menu search behind the menu revenue (grid of G bids per bidder,
    refined by the same ascent)."""

    grid: int = attrs.field(default=1024, validator=attrs.validators.ge(2))


@attrs.frozen
class MipCertifyOptions:
    """`certify mip { ... }`. `time_limit` and `threads` here are the defaults the plan resolves
    when the action's own `time_limit` / `threads` fields are absent."""

    solver: Solver = Solver.AUTO
    #: per MIP; a solve stopped there is certified at the solver's best bound, with its gap
    time_limit: float = attrs.field(default=60.0, validator=_pos)
    threads: int = attrs.field(default=1, validator=_pos)
    bounds: Bounds = Bounds.LINEAR
    gap: float = attrs.field(default=1e-6, validator=_pos)  # absolute gap of each MIP
    branch_gap: float = attrs.field(default=1e-4, validator=_pos)  # spatial branching (HiGHS)
    max_nodes: int = attrs.field(default=400, validator=_pos)
    #: also certify the worst case over the whole support, per agent, over cells of (true
    #: values, other bids) bounded by one-copy MIPs (backends/mip/corners.py: the menu's
    #: utility is convex in the values); `regret_at_most` is then judged on it
    #: (the shipped auction specs set it; off, the property is checked per held-out profile)
    support: bool = False
    #: that MIP's time limit per agent; stopped there, its best bound is still reported
    support_time_limit: float = attrs.field(default=600.0, validator=_pos)


@attrs.frozen
class ValuationOptions:
    """`data valuations { ... }`: profiles for revenue and PGD regret (more than are certified)."""

    eval_profiles: int = attrs.field(default=1000, validator=_pos)
