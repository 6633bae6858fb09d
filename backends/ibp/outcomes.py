"""Per-image records and the summary of an ibp run (sound or silent: see `make_record`).

A record is `certified` only with a certificate; the attack's counterexample makes it
`falsified`; both at once is an `error` (the bound was unsound) and counts as a soundness
violation; an image the engine could not bound is `unknown` with the engine's reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from threatlang.backends.base import Record, Status, Table

from .certify import Outcome, PatchCertificate
from .metrics import IbpSummary, StrategyMetrics


@attrs.frozen
class BallCertificate:
    """One image's input-ball certificate: per radius, certified? and the margin bound."""

    radii: tuple[float, ...]
    certified_at: tuple[bool, ...]
    margins: tuple[float, ...]
    defect: str | None = None  # a bound above an observed margin (the engine is unsound)


@attrs.frozen
class Unbounded:
    """No engine could bound the model: the reason names the op."""

    reason: str


Certificate = PatchCertificate | BallCertificate | Unbounded


@attrs.frozen
class AttackRow:
    """One image's attack result: broken?, and the counterexample when the clean image was
    classified correctly (a JSON-ready dict: kind, where, and the adversarial values)."""

    success: bool
    counterexample: dict | None = None


def make_record(
    i: int,
    label: int,
    pred: int,
    cert: Certificate | None,
    att: AttackRow | None,
    seconds: float,
) -> Record:
    rid = f"test-{i}"
    values: dict[str, Any] = {"label": label, "predicted": pred, "clean_correct": pred == label}
    certified, reason = _certificate(cert, pred == label, values)
    values["certified"] = certified
    counter = None
    if att is not None:
        values["attack_success"] = att.success
        if att.success and pred == label:
            counter = att.counterexample
    if pred != label:
        return Record(rid, Status.FALSIFIED, values, seconds, {"kind": "clean", "predicted": pred})
    if values.get("engine_defect"):  # never a certificate; counts as a soundness violation
        return Record(rid, Status.ERROR, values, seconds, counter, reason)
    if certified and counter is not None:
        why = "attack broke a certified example: the bound is unsound"
        return Record(rid, Status.ERROR, values, seconds, counter, why)
    if certified:
        return Record(rid, Status.CERTIFIED, values, seconds)
    if counter is not None:
        return Record(rid, Status.FALSIFIED, values, seconds, counter)
    return Record(rid, Status.UNKNOWN, values, seconds, None, reason)


def _certificate(cert: Certificate | None, correct: bool, values: dict) -> tuple[bool, str]:
    if cert is None:
        return False, "no certify action in the spec"
    if isinstance(cert, Unbounded):
        values["unsupported"] = True
        return False, cert.reason
    if isinstance(cert, BallCertificate):
        values.update(
            radii=list(cert.radii),
            certified_at=list(cert.certified_at),
            margin_lower=list(cert.margins),
        )
        if cert.defect is not None:
            values["engine_defect"] = True
            return False, cert.defect
        ok = all(cert.certified_at) and correct
        return ok, "margin lower bound <= 0 at the largest radius (bound inconclusive)"
    values.update(
        margin_lower=cert.margin,
        runner_up=cert.runner_up,
        worst_location=list(cert.location),
        worst_shape=cert.shape_index,
    )
    if cert.outcome is Outcome.ENGINE_DEFECT:
        values["engine_defect"] = True
        return False, cert.reason or "engine defect"
    if cert.outcome is Outcome.UNSUPPORTED:
        values["unsupported"] = True
        return False, cert.reason or "the engine cannot bound this model"
    reason = (
        f"margin lower bound {cert.margin:.4g} <= 0 against class {cert.runner_up} "
        "(bound inconclusive)"
    )
    return cert.outcome is Outcome.CERTIFIED, reason


@attrs.frozen
class Tally:
    """Accuracies over one model's records."""

    examples: int
    clean: float
    empirical: float | None
    certified: float | None
    violations: int
    unsupported: int

    @classmethod
    def of(cls, records: Sequence[Record], attacked: bool, certified: bool) -> Tally:
        n = max(1, len(records))
        clean = sum(bool(r.values.get("clean_correct")) for r in records) / n
        emp = (
            sum(
                bool(r.values.get("clean_correct")) and not r.values["attack_success"]
                for r in records
            )
            / n
            if attacked
            else None
        )
        cert = sum(r.status is Status.CERTIFIED for r in records) / n if certified else None
        return cls(
            len(records),
            clean,
            emp,
            cert,
            sum(r.status is Status.ERROR for r in records),
            sum(r.status is Status.UNKNOWN and bool(r.values.get("unsupported")) for r in records),
        )

    def accuracies(self) -> dict[str, float]:
        acc = {"clean": self.clean, "empirical": self.empirical, "certified": self.certified}
        return {k: v for k, v in acc.items() if v is not None}


def single_summary(tally: Tally, seconds: dict[str, float | None]) -> IbpSummary:
    return IbpSummary(
        examples=tally.examples,
        clean_accuracy=tally.clean,
        empirical_accuracy=tally.empirical,
        certified_accuracy=tally.certified,
        soundness_violations=tally.violations,
        unsupported=tally.unsupported,
        train_seconds=_round(seconds.get("train")),
        attack_seconds=_round(seconds.get("attack")),
        certify_seconds=_round(seconds.get("certify")),
    )


def strategy_metrics(tally: Tally, train_seconds: float | None) -> StrategyMetrics:
    return StrategyMetrics(
        tally.clean, tally.empirical, tally.certified, _round(train_seconds), tally.violations
    )


def metrics_table(title: str, tally: Tally, seconds: dict[str, float | None]) -> Table:
    rows = [(k, f"{v:.1%}") for k, v in tally.accuracies().items()]
    rows += [(f"{k} seconds", f"{v:.1f}") for k, v in seconds.items() if v is not None]
    if tally.unsupported:
        rows.append(("unsupported (unknown)", str(tally.unsupported)))
    rows.append(("soundness violations", str(tally.violations)))
    return Table(title, ("metric", "value"), rows)


def loss_table(title: str, losses: Sequence[float]) -> Table:
    return Table(title, ("epoch", "loss"), [(i + 1, round(v, 4)) for i, v in enumerate(losses)])


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)
