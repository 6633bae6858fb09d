"""The records a landscape run appends: one per optimizer trial, poisoned model, wedge network.

Nothing here is certified: every record is an empirical measurement (status ``unknown``), or a
``timeout`` when an optimizer found no model inside any loss bin within its budget.
"""

from __future__ import annotations

from threatlang.report import Record, Status

from .loss_bins import PoisonOutcome, TrialOutcome
from .wedge import Boundary

EMPIRICAL = "an empirical measurement: nothing is certified"


def size_key(width: float | None, samples: int) -> str:
    """The key of one grid size in records and summary maps (``"16"`` or ``"w0.5/n16"``)."""
    return str(samples) if width is None else f"w{width:g}/n{samples}"


def trial_record(prefix: str, outcome: TrialOutcome, width: float | None, seconds: float) -> Record:
    rid = f"{prefix}/{outcome.optimizer}"
    outcome = TrialOutcome(outcome.optimizer, outcome.samples, outcome.trial, outcome.cells, width)
    if all(c is None for c in outcome.cells):
        return Record(
            rid,
            Status.TIMEOUT,
            outcome.to_json(),
            seconds,
            reason="no model reached 100% training accuracy inside a loss bin within the budget",
        )
    return Record(rid, Status.UNKNOWN, outcome.to_json(), seconds, reason=EMPIRICAL)


def poison_record(rid: str, p: PoisonOutcome, seconds: float) -> Record:
    return Record(rid, Status.UNKNOWN, p.to_json(), seconds, reason=EMPIRICAL)


def wedge_record(b: Boundary, draw: int) -> Record:
    values = {
        "method": b.method,
        "width": b.width,
        "train_accuracy": b.train_accuracy,
        "test_accuracy": b.test_accuracy,
        "population_accuracy": b.population_accuracy,
    }
    return Record(f"wedge/{b.method}/w{b.width}/d{draw}", Status.UNKNOWN, values, reason=EMPIRICAL)
