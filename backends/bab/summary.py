"""The typed schema of a `bab` run's summary metrics (`Capabilities.summary`; no torch).

A run is one input box, or a union of boxes (`threat boxes`, one work item per box), split into
`shards` work items each, and one output property; each item
is decided `holds` (proved), `violated` (a counterexample the original model confirms) or left
`unknown` (time limit, domain budget, or numerical trouble, with the reason on its record).
"""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class BabSummary:
    #: the whole box's verdict: "holds" when every shard holds, "violated" when any shard has a
    #: confirmed counterexample, else "unknown"
    verdict: str
    #: shards proved to satisfy the property [count]
    holds: int
    #: shards with a counterexample confirmed on the original model [count]
    violated: int
    #: shards left undecided within the limits [count]
    unknown: int
    #: wall time summed over the shards [s]
    seconds: float
    #: of which looking for counterexamples (PGD, candidate points, confirmation) [s]
    attack_seconds: float
    #: proved shards where the float64 copy of the model saw a violation: 0 unless a bound was
    #: unsound [count]
    soundness_violations: int
