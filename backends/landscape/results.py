"""Records, tables and summary metrics of a landscape run."""

from __future__ import annotations

from collections import defaultdict

from threatlang.report import Record, Status, Table

from .experiment import PoisonOutcome
from .loss_bins import Cell, TrialOutcome, aggregate, best_cell, mean_log10_volume, mean_se
from .wedge import METHODS, Boundary

EMPIRICAL = "an empirical measurement: nothing is certified"


def trial_record(outcome: TrialOutcome, seconds: float) -> Record:
    rid = f"volume/n{outcome.samples}/t{outcome.trial}/{outcome.optimizer}"
    if all(c is None for c in outcome.cells):
        return Record(
            rid,
            Status.TIMEOUT,
            outcome.to_json(),
            seconds,
            reason="no model reached 100% training accuracy inside a loss bin within the budget",
        )
    return Record(rid, Status.UNKNOWN, outcome.to_json(), seconds, reason=EMPIRICAL)


def poison_record(p: PoisonOutcome, seconds: float) -> Record:
    values = {
        "samples": p.samples,
        "trial": p.trial,
        "train_accuracy": p.train_accuracy,
        "val_accuracy": p.val_accuracy,
        "steps": p.steps,
    }
    return Record(
        f"poison/n{p.samples}/t{p.trial}", Status.UNKNOWN, values, seconds, reason=EMPIRICAL
    )


def volume_tables(
    outcomes: list[TrialOutcome],
    labels: tuple[str, ...],
    samples: tuple[int, ...],
    optimizers: tuple[str, ...],
    trials: int,
):
    """Table 7.2 in miniature, the G&C volume table, and the summary metrics."""
    cells = aggregate(outcomes, len(labels))
    rows, metrics, per_bin = [], {}, defaultdict(dict)
    for n in sorted(samples, reverse=True):
        for opt in optimizers:
            row = cells.get((opt, n), tuple(Cell(None, None, 0) for _ in labels))
            best = best_cell(row, trials)
            rows.append((n, opt, best.text(), *(c.text() for c in row)))
            per_bin[opt][str(n)] = [
                {"window": w, **c.to_json()} for w, c in zip(labels, row, strict=True)
            ]
            metrics.setdefault(f"{opt}_accuracy_by_samples", {})[str(n)] = best.mean
    largest = max(samples)
    for opt in optimizers:
        best = best_cell(cells.get((opt, largest), ()), trials)
        metrics[f"{opt}_accuracy"] = best.mean
        metrics[f"{opt}_accuracy_se"] = best.se
    metrics["accuracy_at_samples"] = largest
    metrics["loss_bins"] = list(labels)
    metrics["loss_bin_tables"] = dict(per_bin)
    table = Table(
        "Test accuracy at matched normalised train loss (mean±SE over trials; - = no model in the bin)",
        ("samples", "optimizer", "best test acc", *labels),
        rows,
    )
    tables = [table]
    if "guess_and_check" in optimizers:
        vols = mean_log10_volume(outcomes, "guess_and_check", len(labels))
        metrics["guess_and_check_log10_volume"] = {str(n): v for n, v in vols.items()}
        vrows = [
            (n, *("-" if v is None else f"{v:.2f}" for v in vs))
            for n, vs in sorted(vols.items(), reverse=True)
        ]
        tables.append(
            Table(
                "Guess & Check volume estimate log10(1/guesses) per loss bin (§7.6)",
                ("samples", *labels),
                vrows,
            )
        )
    return tables, metrics


def poison_table(outcomes: list[PoisonOutcome], samples: tuple[int, ...]):
    """Table 7.1: the architecture fits each split while failing the validation set."""
    rows, metrics = [], {"poison_train_accuracy": {}, "poison_val_accuracy": {}}
    for n in sorted(samples, reverse=True):
        mine = [p for p in outcomes if p.samples == n]
        tr, va = mean_se([p.train_accuracy for p in mine]), mean_se([p.val_accuracy for p in mine])
        rows.append((n, tr.text(), va.text()))
        metrics["poison_train_accuracy"][str(n)] = tr.mean
        metrics["poison_val_accuracy"][str(n)] = va.mean
    return Table(
        "Poisoned model (Table 7.1): train and validation accuracy",
        ("samples", "train acc", "val acc"),
        rows,
    ), metrics


def wedge_record(b: Boundary, draw: int) -> Record:
    values = {
        "method": b.method,
        "width": b.width,
        "train_accuracy": b.train_accuracy,
        "test_accuracy": b.test_accuracy,
        "population_accuracy": b.population_accuracy,
    }
    return Record(f"wedge/{b.method}/w{b.width}/d{draw}", Status.UNKNOWN, values, reason=EMPIRICAL)


def wedge_table(boundaries: tuple[Boundary, ...], widths: tuple[int, ...]):
    """Accuracy on fresh wedge samples per method and width (train and test points in brackets)."""
    rows, metrics, test_metrics = [], {}, {}
    for method in METHODS:
        row = [method]
        for w in widths:
            mine = [b for b in boundaries if b.method == method and b.width == w]
            pop = mean_se([b.population_accuracy for b in mine])
            tr = mean_se([b.train_accuracy for b in mine])
            te = mean_se([b.test_accuracy for b in mine])
            row.append(
                "-"
                if pop.mean is None
                else f"{pop.text()} (train {100 * tr.mean:.0f}%, test {100 * te.mean:.0f}%)"
            )
            metrics.setdefault(method, {})[str(w)] = pop.mean
            test_metrics.setdefault(method, {})[str(w)] = te.mean
        rows.append(tuple(row))
    table = Table(
        "Wedge toy problem: accuracy on the data distribution (train / test points in brackets)",
        ("method", *(f"width {w}" for w in widths)),
        rows,
    )
    return table, {"wedge_population_accuracy": metrics, "wedge_test_accuracy": test_metrics}
