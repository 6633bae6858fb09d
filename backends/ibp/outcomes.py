"""Per-example records and the run summary of an ibp plan (sound or silent: see `_record`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from threatlang.backends.base import Record, RunContext, Status, Summary, Table

from .certify import Outcome
from .plan import AttackStep, CertifyStep, IbpPlan
from .plot import write_plot


def make_record(i: int, j: int, label: int, pred: int, per: dict, seconds: float) -> Record:
    values: dict[str, Any] = {"label": label, "predicted": pred, "clean_correct": pred == label}
    cert = per.get("certify")
    att = per.get("attack")
    certified, reason = False, "no certify action in the spec"
    if cert is not None and "certs" in cert:
        c = cert["certs"][j]
        values.update(
            margin_lower=c.margin,
            runner_up=c.runner_up,
            worst_location=list(c.location),
            worst_shape=c.shape_index,
        )
        certified = c.outcome is Outcome.CERTIFIED
        if c.outcome is Outcome.UNSUPPORTED:
            reason = c.reason
        elif not certified:
            reason = f"margin lower bound {c.margin:.4g} <= 0 against class {c.runner_up} (bound inconclusive)"
    elif cert is not None and "ball_ok" in cert:
        ok = cert["ball_ok"][j]
        values.update(
            radii=list(cert["radii"]),
            certified_at=ok.tolist(),
            margin_lower=cert["ball_margin"][j].tolist(),
        )
        certified = bool(ok.all()) and pred == label
        reason = "margin lower bound <= 0 at the largest radius (bound inconclusive)"
    elif cert is not None:
        reason = cert["unsupported"]
    values["certified"] = certified
    counter = None
    if att is not None:
        values["attack_success"] = bool(att["success"][j])
        if att["success"][j] and pred == label:
            counter = _patch_counterexample(att, j)
    if pred != label:
        return Record(
            f"test-{i}", Status.FALSIFIED, values, seconds, {"kind": "clean", "predicted": pred}
        )
    if certified and counter is not None:
        return Record(
            f"test-{i}",
            Status.ERROR,
            values,
            seconds,
            counter,
            "attack broke a certified example: the bound is unsound",
        )
    if certified:
        return Record(f"test-{i}", Status.CERTIFIED, values, seconds)
    if counter is not None:
        return Record(f"test-{i}", Status.FALSIFIED, values, seconds, counter)
    return Record(f"test-{i}", Status.UNKNOWN, values, seconds, None, reason)


def _patch_counterexample(att: dict, j: int) -> dict:
    threat = att["threat"]
    s = int(att["shape"][j])
    r, c = (int(v) for v in att["location"][j])
    mask = np.array(threat.masks[s], dtype=bool)
    h, w = mask.shape
    content = att["adv"][j][:, r : r + h, c : c + w].numpy()
    return {
        "kind": "patch",
        "shape": s,
        "location": [r, c],
        "mask": mask.astype(int).tolist(),
        "content": np.round(content, 6).tolist(),
    }


def summarize(
    plan: IbpPlan, ctx: RunContext, timings: dict[str, float], losses: list[float]
) -> Summary:
    records = ctx.records.all()
    n = max(1, len(records))
    clean = sum(bool(r.values.get("clean_correct")) for r in records) / n
    metrics: dict[str, Any] = {"examples": len(records), "clean_accuracy": clean}
    acc = {"clean": clean}
    kinds = {type(s) for s in plan.steps}
    if AttackStep in kinds:
        metrics["empirical_accuracy"] = acc["empirical"] = (
            sum(
                bool(r.values.get("clean_correct")) and not r.values.get("attack_success")
                for r in records
            )
            / n
        )
    if CertifyStep in kinds:
        metrics["certified_accuracy"] = acc["certified"] = (
            sum(r.status is Status.CERTIFIED for r in records) / n
        )
    metrics["unsound"] = sum(r.status is Status.ERROR for r in records)
    metrics.update({k: round(v, 3) for k, v in timings.items()})
    rows = [(k, f"{v:.1%}") for k, v in acc.items()] + [
        (k, f"{v:.1f}s") for k, v in timings.items()
    ]
    tables = [
        Table(
            f"{plan.spec.name}: patch robustness ({len(records)} test images)",
            ("metric", "value"),
            rows,
        )
    ]
    if losses:
        tables.append(
            Table(
                "certificate training",
                ("epoch", "loss"),
                [(i + 1, round(v, 4)) for i, v in enumerate(losses)],
            )
        )
    plot = write_plot(ctx.artifact("accuracy.png"), acc, losses, plan.spec.name)
    return Summary(metrics, tuple(tables), (plot,))
