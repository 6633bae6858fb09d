"""Records, tables, the attack plot and the summary metrics of a watermark run."""

from __future__ import annotations

from pathlib import Path

import attrs

from threatlang.report import Record, Status, Table

from .attacks import AttackEpoch, PGDResult
from .certify import WatermarkCertificate
from .config import NoiseStrategy
from .summary import WatermarkSummary


@attrs.frozen
class ModelResult:
    name: str  # "certified" or "baseline"
    test_accuracy: float
    trigger_accuracy: float
    certificate: WatermarkCertificate
    seconds: float


def _bound(result: ModelResult | None, radius: float):
    return None if result is None else result.certificate.by_radius()[radius]


@attrs.frozen
class InsideAttack:
    """The strongest attack that stayed strictly inside one radius: the one whose upper
    confidence bound on the smoothed trigger accuracy is lowest."""

    name: str  # "parameter_pgd" or "<removal label> epoch <k>"
    distance: float
    smoothed_median: float
    smoothed_upper: float


def strongest_inside(
    radius: float, pgd: PGDResult | None, histories: dict[tuple[str, str], list[AttackEpoch]]
) -> InsideAttack | None:
    """Among parameter PGD at ``radius`` and every removal-attack epoch of the certified
    watermark that moved the parameters less than ``radius``: the lowest upper bound."""
    found = []
    if pgd is not None and pgd.smoothed_upper is not None and pgd.distance < radius:
        found.append(
            InsideAttack("parameter_pgd", pgd.distance, pgd.smoothed_median, pgd.smoothed_upper)
        )
    for (label, model), history in histories.items():
        if model != "certified":
            continue
        for e in history[1:]:
            if e.l2_distance < radius and e.trigger_smoothed_upper is not None:
                found.append(
                    InsideAttack(
                        f"{label} epoch {e.epoch}",
                        e.l2_distance,
                        e.trigger_smoothed,
                        e.trigger_smoothed_upper,
                    )
                )
    return min(found, key=lambda a: a.smoothed_upper, default=None)


def radius_record(
    radius: float,
    results: dict[str, ModelResult],
    pgd: PGDResult | None,
    threshold: float | None,
    inside: InsideAttack | None = None,
) -> Record:
    """Certified iff the proven lower bound meets the requirement (or any bound, with none);
    falsified iff an attack inside the ball pushed an upper confidence bound on the smoothed
    trigger accuracy below the requirement. An upper bound below the certified lower bound
    refutes the certificate itself: ``soundness_violation`` (never expected, beyond the
    2(1 - confidence) chance of either bound being wrong)."""
    cert = results["certified"].certificate
    row = next(r for r in cert.radii if r.radius == radius)
    values = {
        "radius": radius,
        "sigma": cert.sigma,
        "samples": cert.n,
        "confidence": cert.confidence,
        "certified_trigger_accuracy": row.lower_bound,
        "baseline_certified_trigger_accuracy": _bound(results.get("baseline"), radius),
        "p_lower": row.p_lower,
        "order_statistic": row.rank,
        "scope": cert.scope,
        "strongest_inside_attack": None if inside is None else attrs.asdict(inside),
        "soundness_violation": bool(
            inside is not None
            and row.lower_bound is not None
            and inside.smoothed_upper < row.lower_bound
        ),
    }
    if pgd is not None:
        values["pgd"] = attrs.asdict(pgd)
    rid = f"radius={radius:g}"
    seconds = cert_seconds(results)
    if inside is not None and threshold is not None and inside.smoothed_upper < threshold:
        return Record(rid, Status.FALSIFIED, values, seconds, counterexample=attrs.asdict(inside))
    if row.lower_bound is None:
        return Record(rid, Status.UNKNOWN, values, seconds, reason=row.reason)
    if threshold is None or row.lower_bound >= threshold:
        return Record(rid, Status.CERTIFIED, values, seconds)
    reason = (
        f"certified trigger accuracy {row.lower_bound:.4g} is below the required {threshold:g}"
        + ("; no attack inside the radius refuted it" if inside is not None else "")
    )
    return Record(rid, Status.UNKNOWN, values, seconds, reason=reason)


def cert_seconds(results: dict[str, ModelResult]) -> float:
    return results["certified"].seconds


def attack_record(
    label: str, model: str, history: list[AttackEpoch], threshold: float | None, radius: float
) -> Record:
    """Removal attacks are empirical: they inform, they never certify (status ``unknown``)."""
    last = history[-1]
    values = {
        "attack": label,
        "model": model,
        **{f: [getattr(e, f) for e in history] for f in _EPOCH_FIELDS},
    }
    where = "within" if last.l2_distance <= radius else "beyond"
    reason = (
        f"empirical removal attack: after {last.epoch} epochs the parameters moved "
        f"{last.l2_distance:.3g} in l2 ({where} the largest certified radius {radius:g}); "
        f"white-box trigger accuracy {last.trigger_smoothed:.3g}, black-box "
        f"{last.trigger_plain:.3g}, test accuracy {last.test_accuracy:.3g}"
    )
    rid = f"attack/{label.replace(' ', '/')}/{model}"  # e.g. attack/finetune/lr=0.001/certified
    return Record(rid, Status.UNKNOWN, values, reason=reason)


_EPOCH_FIELDS = (
    "trigger_plain",
    "trigger_smoothed",
    "trigger_smoothed_upper",
    "test_accuracy",
    "l2_distance",
)


def embedding_table(results: dict[str, ModelResult]) -> Table:
    rows = [
        (r.name, r.test_accuracy, r.trigger_accuracy, r.certificate.median, r.certificate.mean)
        for r in results.values()
    ]
    columns = ("watermark", "test acc", "trigger (black-box)", "smoothed median", "mean")
    return Table("Embedded watermarks", columns, rows)


def certificate_table(
    radii: tuple[float, ...], results: dict[str, ModelResult], pgd: dict[float, PGDResult]
) -> Table:
    """Table 5.2 (and, with PGD, Table 5.1) for this run."""
    rows = []
    for radius in radii:
        p = pgd.get(radius)
        rows.append(
            (
                radius,
                _bound(results["certified"], radius),
                _bound(results.get("baseline"), radius),
                None if p is None else p.smoothed_median,
                None if p is None else p.smoothed_upper,
                None if p is None else p.trigger_plain,
                None if p is None else p.worst_test_accuracy,
            )
        )
    columns = (
        "radius", "certified", "baseline", "PGD median", "PGD upper", "PGD BB trig", "PGD test",
    )  # fmt: skip
    cert = results["certified"].certificate
    title = (
        f"Certified trigger accuracy per l2 radius (σ={cert.sigma:g}; the ball covers "
        f"{cert.scope}); PGD inside the radius: smoothed median, its upper bound, black-box "
        "trigger and worst test accuracy"
    )
    return Table(title, columns, rows)


def attack_table(histories: dict[tuple[str, str], list[AttackEpoch]]) -> Table:
    """Tables 5.4-5.5: final trigger accuracies, test accuracy and distance moved."""
    rows = []
    for (label, model), h in histories.items():
        first = h[1] if len(h) > 1 else h[0]
        last = h[-1]
        rows.append(
            (label, model, last.epoch, last.trigger_plain, last.trigger_smoothed,
             last.test_accuracy, first.l2_distance, last.l2_distance)
        )  # fmt: skip
    columns = ("attack", "model", "epochs", "BB trig", "WB trig", "test", "l2 ep 1", "l2 end")
    title = "Removal attacks (BB: black-box, WB: white-box smoothed trigger accuracy)"
    return Table(title, columns, rows)


def plot_attacks(histories: dict[tuple[str, str], list[AttackEpoch]], path: Path) -> Path:
    """Trigger accuracy over attack epochs, one panel per attack (Figures 5.4-5.7)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels = list(dict.fromkeys(label for label, _ in histories))
    fig = Figure(figsize=(4.2 * len(labels), 3.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(labels), squeeze=False)[0]
    for ax, label in zip(axes, labels, strict=True):
        for (lab, model), h in histories.items():
            if lab != label:
                continue
            epochs = [e.epoch for e in h]
            ax.plot(epochs, [e.trigger_smoothed for e in h], "-o", label=f"{model} white-box")
            ax.plot(epochs, [e.trigger_plain for e in h], "--s", label=f"{model} black-box")
        ax.set_title(label)
        ax.set_xlabel("attack epoch")
        ax.set_ylabel("trigger accuracy")
        ax.set_ylim(-0.05, 1.05)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def summary_metrics(
    results: dict[str, ModelResult],
    pgd: dict[float, PGDResult],
    histories: dict[tuple[str, str], list[AttackEpoch]],
    strategy: NoiseStrategy,
    records: list[Record],
    embed_seconds: dict[str, float | None],
) -> dict:
    """The metrics, built through the declared schema (`WatermarkSummary`)."""
    cert = results["certified"]
    base = results.get("baseline")
    attacks = None
    if histories:
        attacks = {}
        for (label, model), h in histories.items():
            attacks.setdefault(label, {})[model] = attrs.asdict(h[-1])
    summary = WatermarkSummary(
        test_accuracy=cert.test_accuracy,
        trigger_accuracy=cert.trigger_accuracy,
        smoothed_trigger_accuracy=cert.certificate.median,
        certified_trigger_accuracy=_by_radius(cert),
        sigma=cert.certificate.sigma,
        samples=cert.certificate.n,
        confidence=cert.certificate.confidence,
        noise_strategy=strategy.value,
        parameters=cert.certificate.parameters,
        buffers_held_fixed=cert.certificate.buffers,
        certificate_scope=cert.certificate.scope,
        soundness_violations=sum(bool(r.values.get("soundness_violation")) for r in records),
        baseline=None
        if base is None
        else {
            "test_accuracy": base.test_accuracy,
            "trigger_accuracy": base.trigger_accuracy,
            "smoothed_trigger_accuracy": base.certificate.median,
            "certified_trigger_accuracy": _by_radius(base),
        },
        parameter_pgd={f"{r:g}": attrs.asdict(p) for r, p in pgd.items()} if pgd else None,
        attacks=attacks,
        embed_seconds=embed_seconds,
        certify_seconds={name: r.seconds for name, r in results.items()},
    )
    return attrs.asdict(summary)


def _by_radius(result: ModelResult) -> dict[str, float | None]:
    return {f"{k:g}": v for k, v in result.certificate.by_radius().items()}
