"""Records, tables, the attack plot and the summary metrics of a watermark run."""

from __future__ import annotations

from pathlib import Path

import attrs

from threatlang.report import Record, Status, Table

from .attacks import AttackEpoch, PGDResult
from .certify import WatermarkCertificate
from .config import NoiseStrategy


@attrs.frozen
class ModelResult:
    name: str  # "certified" or "baseline"
    test_accuracy: float
    trigger_accuracy: float
    certificate: WatermarkCertificate
    seconds: float


def _bound(result: ModelResult | None, radius: float):
    return None if result is None else result.certificate.by_radius()[radius]


def radius_record(
    radius: float,
    results: dict[str, ModelResult],
    pgd: PGDResult | None,
    threshold: float | None,
) -> Record:
    """Certified iff the proven lower bound meets the requirement (or any bound, with none);
    falsified iff PGD inside the ball pushed an upper confidence bound below it."""
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
    }
    if pgd is not None:
        values["pgd"] = attrs.asdict(pgd)
    rid = f"radius={radius:g}"
    if pgd is not None and threshold is not None and pgd.smoothed_upper is not None:
        if pgd.smoothed_upper < threshold:
            return Record(rid, Status.FALSIFIED, values, cert_seconds(results),
                          counterexample=attrs.asdict(pgd))  # fmt: skip
    if row.lower_bound is None:
        return Record(rid, Status.UNKNOWN, values, cert_seconds(results), reason=row.reason)
    if threshold is None or row.lower_bound >= threshold:
        return Record(rid, Status.CERTIFIED, values, cert_seconds(results))
    reason = (
        f"certified trigger accuracy {row.lower_bound:.4g} is below the required {threshold:g}"
        + ("; PGD found no violation" if pgd is not None else "")
    )
    return Record(rid, Status.UNKNOWN, values, cert_seconds(results), reason=reason)


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


_EPOCH_FIELDS = ("trigger_plain", "trigger_smoothed", "test_accuracy", "l2_distance")


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
    sigma = results["certified"].certificate.sigma
    title = (
        f"Certified trigger accuracy per l2 radius (σ={sigma:g}); PGD inside the radius: "
        "smoothed median, its upper bound, black-box trigger and worst test accuracy"
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
) -> dict:
    cert = results["certified"]
    metrics = {
        "test_accuracy": cert.test_accuracy,
        "trigger_accuracy": cert.trigger_accuracy,
        "smoothed_trigger_accuracy": cert.certificate.median,
        "certified_trigger_accuracy": {
            f"{k:g}": v for k, v in cert.certificate.by_radius().items()
        },
        "sigma": cert.certificate.sigma,
        "samples": cert.certificate.n,
        "confidence": cert.certificate.confidence,
        "noise_strategy": strategy.value,
    }
    base = results.get("baseline")
    if base is not None:
        metrics["baseline"] = {
            "test_accuracy": base.test_accuracy,
            "trigger_accuracy": base.trigger_accuracy,
            "smoothed_trigger_accuracy": base.certificate.median,
            "certified_trigger_accuracy": {
                f"{k:g}": v for k, v in base.certificate.by_radius().items()
            },
        }
    if pgd:
        metrics["parameter_pgd"] = {f"{r:g}": attrs.asdict(p) for r, p in pgd.items()}
    if histories:
        attacks: dict = {}
        for (label, model), h in histories.items():
            attacks.setdefault(label, {})[model] = attrs.asdict(h[-1])
        metrics["attacks"] = attacks
    return metrics
