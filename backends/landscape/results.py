"""Records, tables and summary metrics of a landscape run (fields: `summary.LandscapeSummary`)."""

from __future__ import annotations

from collections import defaultdict

from threatlang.report import Table

from .loss_bins import (
    Cell,
    PoisonOutcome,
    TrialOutcome,
    aggregate,
    best_cell,
    matched_best,
    mean_log10_volume,
    mean_se,
    paired_gaps,
)
from .records import size_key
from .wedge import METHODS, Boundary

REFERENCE = "sgd"


def _signed(cell: Cell) -> str:
    if cell.mean is None:
        return "-"
    se = "n/a" if cell.se is None else f"{100 * cell.se:.2f}"
    return f"{100 * cell.mean:+.2f}±{se} ({cell.count})"


def volume_tables(
    outcomes: list[TrialOutcome],
    labels: tuple[str, ...],
    samples: tuple[int, ...],
    widths: tuple[float | None, ...],
    optimizers: tuple[str, ...],
    trials: int,
):
    """Tables 7.2-7.4/7.6 in miniature, the matched-bin comparison with SGD and its per-bin
    paired gaps, the G&C volume table, and the summary metrics."""
    shown_width = len(widths) > 1 or widths[0] is not None
    metrics: dict = {
        "samples": sorted(samples),
        "widths": None if not shown_width else [w for w in widths if w is not None],
        "loss_bins": list(labels),
        "accuracy_at_samples": max(samples),
    }
    rows, per_bin, by_samples = [], defaultdict(dict), defaultdict(dict)
    matched_rows, matched, gaps = [], defaultdict(dict), defaultdict(dict)
    empty = tuple(Cell(None, None, 0) for _ in labels)
    for width in widths:
        mine = [o for o in outcomes if o.width == width]
        cells = aggregate(mine, len(labels))
        for n in sorted(samples, reverse=True):
            key = size_key(width, n)
            lead = ((f"{width:g}",) if shown_width else ()) + (n,)
            for opt in optimizers:
                row = cells.get((opt, n), empty)
                best = best_cell(row, trials)
                rows.append((*lead, opt, best.text(), *(c.text() for c in row)))
                per_bin[opt][key] = [
                    {"window": w, **c.to_json()} for w, c in zip(labels, row, strict=True)
                ]
                by_samples[opt][key] = best.mean
                if opt == REFERENCE or REFERENCE not in optimizers:
                    continue
                m = matched_best(row, cells.get((REFERENCE, n), empty), trials)
                pg = paired_gaps(mine, opt, REFERENCE, n, len(labels))
                bins = [labels[i] for i in m.windows]
                matched[opt][key] = {
                    "bins": bins,
                    "accuracy": m.mine.mean,
                    "sgd_accuracy": m.reference.mean,
                    "gap": m.gap,
                }
                gaps[opt][key] = [
                    {"window": w, **c.to_json()} for w, c in zip(labels, pg, strict=True)
                ]
                gap = "-" if m.gap is None else f"{100 * m.gap:+.2f}"
                matched_rows.append(
                    (*lead, opt, len(bins), m.mine.text(), m.reference.text(), gap,
                     *(_signed(c) for c in pg))
                )  # fmt: skip
    first = widths[0]
    largest = max(samples)
    first_cells = aggregate([o for o in outcomes if o.width == first], len(labels))
    metrics["accuracy"], metrics["accuracy_se"] = {}, {}
    for opt in optimizers:
        best = best_cell(first_cells.get((opt, largest), empty), trials)
        metrics["accuracy"][opt] = best.mean
        metrics["accuracy_se"][opt] = best.se
    metrics["accuracy_by_samples"] = dict(by_samples)
    metrics["loss_bin_tables"] = dict(per_bin)
    metrics["matched_accuracy"] = dict(matched) or None
    metrics["paired_gaps"] = dict(gaps) or None
    lead_cols = (("width",) if shown_width else ()) + ("samples",)
    tables = [
        Table(
            "Test accuracy at matched normalised train loss (mean±SE over trials; - = no model "
            "in the bin; best = best bin filled by half the trials, the chapter's rule)",
            (*lead_cols, "optimizer", "best test acc", *labels),
            rows,
        )
    ]
    if matched_rows:
        tables.append(
            Table(
                "Against SGD over matched bins (both bests over the bins both filled in half "
                "the trials) and per-bin paired gaps, optimizer - SGD in points (pairs)",
                (*lead_cols, "optimizer", "bins", "best", "SGD best", "gap", *labels),
                matched_rows,
            )
        )
    if "guess_and_check" in optimizers:
        vols = {}
        for width in widths:
            mine = [o for o in outcomes if o.width == width]
            for n, v in mean_log10_volume(mine, "guess_and_check", len(labels)).items():
                vols[size_key(width, n)] = v
        metrics["guess_and_check_log10_volume"] = vols
        tables.append(
            Table(
                "Guess & Check volume estimate log10(1/guesses) per loss bin (§7.6)",
                ("size", *labels),
                [(k, *("-" if v is None else f"{v:.2f}" for v in vs)) for k, vs in vols.items()],
            )
        )
    return tables, metrics


def poison_table(outcomes: list[PoisonOutcome], samples: tuple[int, ...], widths):
    """Table 7.1: the architecture fits each split while failing the validation set."""
    rows, metrics = [], {"poison_train_accuracy": {}, "poison_val_accuracy": {}}
    for width in widths:
        for n in sorted(samples, reverse=True):
            mine = [p for p in outcomes if p.samples == n and p.width == width]
            tr = mean_se([p.train_accuracy for p in mine])
            va = mean_se([p.val_accuracy for p in mine])
            key = size_key(width, n)
            rows.append((key, tr.text(), va.text()))
            metrics["poison_train_accuracy"][key] = tr.mean
            metrics["poison_val_accuracy"][key] = va.mean
    return Table(
        "Poisoned model (Table 7.1): train and validation accuracy",
        ("size", "train acc", "val acc"),
        rows,
    ), metrics


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
