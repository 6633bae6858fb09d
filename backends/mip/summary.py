"""The typed schema of a `mip` run's summary metrics (`Capabilities.summary`; no torch here).

Money and utilities are in the valuations' unit (valuations lie in the bid support); regrets
are utility differences; times are wall seconds. Certification fields are None when the spec
has no `certify mip` (or nothing was proven).
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class MipSummary:
    #: mean total payment over the evaluation profiles under truthful bidding
    revenue: float
    #: mean total payment when every bidder best-responds over the network's menu (grid +
    #: ascent; the outside option included): the revenue of the exactly incentive-compatible
    #: mechanism the network defines (with several bidders a per-bidder diagnostic)
    menu_revenue: float
    #: mean PGD regret over the evaluation profiles and bidders (the chapter's empirical regret)
    empirical_regret: float
    #: mean PGD regret per bidder
    empirical_regret_per_agent: list[float]
    #: mean and max utility gain of the menu best response over truthful bidding
    menu_regret: float
    menu_regret_max: float
    #: share of (profile, bidder) pairs paying more than their allocation is worth (Table 4.4)
    ir_violation_rate: float
    ir_violation_max: float
    ir_violation_mean: float
    #: revenue when IR-violating payments are dropped
    revenue_after_ir: float
    eval_profiles: int
    #: training seconds (teacher included), as measured by the run that trained; None if loaded
    train_seconds: float | None = None
    #: seconds of the revenue / regret / menu evaluation
    evaluate_seconds: float | None = None
    #: certified items whose strongest attack (PGD or the menu search on the same profile)
    #: found more regret than the certified bound: 0 unless the certificate is unsound
    soundness_violations: int = 0
    #: mean and max certified regret over the proven (profile, bidder) pairs
    certified_regret: float | None = None
    certified_regret_max: float | None = None
    #: mean PGD regret on the proven pairs, and its ratio to the certified mean (Table 4.1)
    empirical_regret_certified_profiles: float | None = None
    empirical_certified_ratio: float | None = None
    solve_time_mean: float | None = None
    solve_time_median: float | None = None
    solve_time_p95: float | None = None
    certified_count: int = 0
    falsified_count: int = 0
    unknown_count: int = 0
    #: pairs with a proven regret (certified, or proven above the limit)
    proven_count: int = 0
    #: largest |MIP - network| of allocation, payment and utility at a proven optimum
    mip_residual_max: float | None = None
    solvers: list[str] = attrs.field(factory=list)
    #: certificates that `solver auto` moved from Gurobi to an open-source solver
    solver_switches: int = 0
