"""Turning evaluated models into records, tables (Table 6.1/6.2 in miniature) and metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import attrs

from threatlang.report import Record, Status, Table

from .evaluate import corruption_accuracy, corruption_error_by_kind, mean_corruption_error


@attrs.frozen(eq=False)
class Row:
    """One evaluated model; the training figures are None for a model that was not trained here."""

    label: str
    clean_accuracy: float
    corruption_errors: Mapping
    seconds_per_epoch: float | None = None
    passes_per_step: float | None = None
    calls_per_step: float | None = None

    @property
    def corruption_accuracy(self) -> float | None:
        return corruption_accuracy(self.corruption_errors) if self.corruption_errors else None


def _mce(row: Row, reference) -> float | None:
    """mCE against the fixed reference model (`reference.Reference`)."""
    if reference is None or not row.corruption_errors:
        return None
    return mean_corruption_error(row.corruption_errors, reference.errors)


def _relative_mce(row: Row, standard: Row | None) -> float | None:
    """mCE against this run's standard model (the previous normalisation, kept for context)."""
    if standard is None or not row.corruption_errors or not standard.corruption_errors:
        return None
    return mean_corruption_error(row.corruption_errors, standard.corruption_errors)


def _ratio(row: Row, baseline: Row | None) -> float | None:
    if baseline is None or row.seconds_per_epoch is None or not baseline.seconds_per_epoch:
        return None
    return row.seconds_per_epoch / baseline.seconds_per_epoch


def _fmt(value: float | None, pattern: str) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else pattern.format(value)
    )


def method_metrics(rows: Mapping[str, Row], reference, standard: Row | None) -> dict[str, dict]:
    return {
        label: {
            "clean_accuracy": r.clean_accuracy,
            "corruption_accuracy": r.corruption_accuracy,
            "mce": _mce(r, reference),
            "mce_vs_standard": _relative_mce(r, standard),
            "seconds_per_epoch": r.seconds_per_epoch,
            "passes_per_step": r.passes_per_step,
            "calls_per_step": r.calls_per_step,
            "cost_ratio": _ratio(r, standard),
        }
        for label, r in rows.items()
    }


def method_table(rows: Mapping[str, Row], reference, standard: Row | None) -> Table:
    body = [
        (
            label,
            _fmt(r.clean_accuracy, "{:.2%}"),
            _fmt(r.corruption_accuracy, "{:.2%}"),
            _fmt(_mce(r, reference), "{:.1%}"),
            _fmt(_relative_mce(r, standard), "{:.1%}"),
            _fmt(r.seconds_per_epoch, "{:.2f}"),
            _fmt(_ratio(r, standard), "{:.2f}x"),
            _fmt(r.passes_per_step, "{:g}"),
            _fmt(r.calls_per_step, "{:g}"),
        )
        for label, r in rows.items()
    ]
    return Table(
        "Table 6.1/6.2 in miniature: accuracy, mCE (vs the fixed reference CNN; vs standard), "
        "cost (passes per example)",
        ("method", "clean", "corrupted", "mCE", "mCE vs std", "s/epoch", "x std", "passes/ex",
         "calls/step"),
        body,
    )  # fmt: skip


def corruption_table(rows: Mapping[str, Row], reference) -> Table:
    """Corruption error CE_c per corruption, relative to the reference (lower is better)."""
    per = {label: corruption_error_by_kind(r.corruption_errors, reference.errors)
           for label, r in rows.items()}  # fmt: skip
    kinds = list(next(iter(per.values())))
    body = [(label, *(_fmt(ce[k], "{:.0%}") for k in kinds)) for label, ce in per.items()]
    return Table(
        "Corruption error per corruption (the fixed reference CNN = 100%)",
        ("method", *(k.value for k in kinds)),
        body,
    )


def method_record(row: Row, metrics: Mapping) -> Record:
    """The method's figures, with its raw corruption errors ("kind/severity": error rate) so
    a resumed run re-reports them without re-evaluating."""
    errors = {f"{k.value}/{s}": e for (k, s), e in row.corruption_errors.items()}
    return Record(
        id=f"method/{row.label}",
        status=Status.UNKNOWN,
        values={**metrics, "corruption_errors": errors},
        seconds=(row.seconds_per_epoch or 0.0),
        reason="empirical evaluation: adversarial training certifies nothing",
    )


def attack_record(
    label: str, attack: str, eps: float, robust: float, clean: float, first: int | None
) -> Record:
    """Falsified when the attack turned a correctly classified example; else unknown."""
    values = {"method": label, "attack": attack, "eps": eps, "robust_accuracy": robust,
              "clean_accuracy": clean}  # fmt: skip
    rid = f"attack/{label}/{attack}/{eps:.6g}"
    if first is not None:
        return Record(rid, Status.FALSIFIED, values, counterexample={"test_index": first})
    return Record(rid, Status.UNKNOWN, values, reason="the attack found nothing; that is no proof")


def attack_table(results: Mapping[tuple[str, str, float], float]) -> Table:
    body = [
        (label, attack, f"{eps:.4g}", f"{acc:.2%}") for (label, attack, eps), acc in results.items()
    ]
    return Table(
        "Robust accuracy under attack", ("method", "attack", "eps", "robust accuracy"), body
    )


def plot_pattern(levels, scales, path: Path) -> Path:
    """The universal pattern per pyramid level (Figure 6.4b), first channel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(levels), figsize=(3 * len(levels), 3), squeeze=False)
    for ax, level, s in zip(axes[0], levels, scales, strict=True):
        img = level[0, 0].detach().cpu().numpy()
        bound = max(abs(img).max(), 1e-12)
        ax.imshow(img, cmap="coolwarm", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_title(f"scale {s}")
        ax.axis("off")
    fig.suptitle("Universal pyramid pattern per level")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
