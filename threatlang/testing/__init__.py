"""The conformance suite, shipped so an out-of-tree backend holds itself to the same promises.

Like cvxpy's solver test helpers: a backend brings one small `Case` (a tiny spec, the files and
objects it runs on, and its strongest attack or exact check); the checks in
`threatlang.testing.suite` are the same for every case. In the backend's own test module:

    from threatlang.testing import Case, register
    register(Case(id="mine", backend="mine", spec=..., prepare=..., attack=..., ...))
    from threatlang.testing.suite import *  # noqa: F401,F403  (the checks, as pytest tests)

The checks: the case certifies something; no certified item is broken by the case's attack; the attack confirms what the backend falsified; injected
time-outs and numerical trouble certify nothing and every unknown has a reason; certified <=
empirical <= clean; the summary carries `soundness_violations` and validates against the
declared, documented schema; resume after losing records, Ray, and a real SIGKILL reproduce
an uninterrupted run. See docs/plugins.md.

Importing this package imports no torch: cases and checks load what they need.
"""

from __future__ import annotations

from .cases import (
    ALPHA,
    Case,
    Run,
    Trouble,
    case_named,
    clopper_pearson_upper,
    register,
    registered,
)

__all__ = [
    "ALPHA",
    "Case",
    "Run",
    "Trouble",
    "case_named",
    "clopper_pearson_upper",
    "register",
    "registered",
]
