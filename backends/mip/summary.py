"""The typed schema of a `mip` run's summary metrics (`Capabilities.summary`; no torch here).

Money and utilities are in the valuations' unit (valuations lie in the bid support); regrets
are utility differences; times are wall seconds. Certification fields are None when the spec
has no `certify mip` (or nothing was proven).
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class MipSummary:
    #: mean total payment over the evaluation profiles under truthful bidding [valuation units]
    revenue: float
    #: mean total payment when every bidder best-responds over the network's menu (grid +
    #: ascent; the outside option included): the revenue of the exactly incentive-compatible
    #: mechanism the network defines (with several bidders a per-bidder diagnostic) [valuation units]
    menu_revenue: float
    #: mean PGD regret over the evaluation profiles and bidders (the chapter's empirical regret) [valuation units]
    empirical_regret: float
    #: mean PGD regret of each bidder [valuation units]
    empirical_regret_per_agent: list[float]
    #: mean utility gain of the menu best response over truthful bidding [valuation units]
    menu_regret: float
    #: largest utility gain of the menu best response over truthful bidding [valuation units]
    menu_regret_max: float
    #: share of (profile, bidder) pairs paying more than their allocation is worth (Table 4.4) [fraction]
    ir_violation_rate: float
    #: largest payment in excess of the allocation's value [valuation units]
    ir_violation_max: float
    #: mean payment in excess of the allocation's value, over all pairs [valuation units]
    ir_violation_mean: float
    #: revenue when IR-violating payments are dropped [valuation units]
    revenue_after_ir: float
    #: valuation profiles the revenue, regret and IR figures are measured on [count]
    eval_profiles: int
    #: training seconds (teacher included), as measured by the run that trained; None if loaded
    train_seconds: float | None = None
    #: seconds of the revenue / regret / menu evaluation
    evaluate_seconds: float | None = None
    #: certified pairs whose strongest attack (PGD or the menu search on the same profile)
    #: found more regret than the certified bound: 0 unless the certificate is unsound [count]
    soundness_violations: int = 0
    #: per-profile (the chapter's Table 4.1): mean, over the proven held-out (profile, bidder)
    #: pairs, of the regret of eq. 4.1 at that profile (a MIP stopped at its time limit counts
    #: with its best bound; its record says `optimal: false` and the gap) [valuation units]
    certified_regret: float | None = None
    #: per-profile: the largest of those certified regrets, i.e. the worst of the `test_limit`
    #: sampled profiles only, NOT the mechanism's worst case (see certified_max_regret) [valuation units]
    certified_regret_max: float | None = None
    #: whole support (`certify mip { support true }`): a sound upper bound on the regret at
    #: every profile of the support, for every bidder (per bidder, a best-first search over
    #: cells bounded by one-copy MIPs; the max over bidders); a search stopped at its time
    #: limit contributes its largest open bound. The spec's
    #: `regret_at_most` is judged on it. None when some bidder's MIP gave no bound [valuation units]
    certified_max_regret: float | None = None
    #: whole support: that bound per bidder [valuation units]
    certified_max_regret_per_agent: list[float | None] = attrs.field(factory=list)
    #: whole support: the largest regret the network attains at a point found (MIP incumbent
    #: or the menu search): a lower bound on the true worst case [valuation units]
    max_regret_found: float | None = None
    #: whole support: largest bound minus found, over bidders (0 when every MIP closed) [valuation units]
    certified_max_regret_gap: float | None = None
    #: whole support: every bidder's MIP closed its gap (false: a time limit stopped one)
    certified_max_regret_closed: bool | None = None
    #: whole support: wall seconds of the MIPs, all bidders [s]
    support_solve_seconds: float | None = None
    #: the spec's `regret_at_most(r)` over the whole support: certified (bound <= r),
    #: falsified (a point with regret > r found) or unknown; None without a limit
    regret_at_most: str | None = None
    #: mean PGD regret on the proven pairs (Table 4.1's empirical column) [valuation units]
    empirical_regret_certified_profiles: float | None = None
    #: mean PGD regret over mean certified regret on the proven pairs (Table 4.1) [ratio]
    empirical_certified_ratio: float | None = None
    #: mean wall time of one (profile, bidder) certificate [s]
    solve_time_mean: float | None = None
    #: median wall time of one certificate [s]
    solve_time_median: float | None = None
    #: 95th percentile wall time of one certificate [s]
    solve_time_p95: float | None = None
    #: pairs certified: regret proven within the spec's limit [count]
    certified_count: int = 0
    #: pairs with a real misreport gaining more than the limit [count]
    falsified_count: int = 0
    #: pairs neither certified nor falsified (time-outs, numerical trouble, a bound above the limit) [count]
    unknown_count: int = 0
    #: pairs with a proven regret (certified, or proven above the limit) [count]
    proven_count: int = 0
    #: largest |MIP - network| of allocation, payment and utility at a proven optimum [valuation units]
    mip_residual_max: float | None = None
    #: the solvers that produced the certificates (gurobi, scip, highs)
    solvers: list[str] = attrs.field(factory=list)
    #: certificates that `solver auto` moved from Gurobi to an open-source solver [count]
    solver_switches: int = 0
