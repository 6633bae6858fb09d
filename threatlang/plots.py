"""`threatlang report RUN_DIR`: tables and PNG plots rebuilt from `records.jsonl` alone.

Backends record different values; each figure here looks for the values it needs and is drawn
only when some records carry them:
- statuses: how many items were certified / falsified / unknown / timed out / failed;
- certified accuracy against the radius (`radii` + `certified_at` per item, a `radius` per item,
  or a `certified_radius` per item) or against the patch size (`patch_size`);
- histograms of regret (any `*regret*` value) and of certified margin lower bounds;
- seconds per item.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from .report import Record, Status, Table


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def status_table(records: Sequence[Record]) -> Table:
    counts = Counter(r.status for r in records)
    n = len(records) or 1
    rows = [(s.value, counts.get(s, 0), counts.get(s, 0) / n) for s in Status]
    return Table("records by status", ("status", "items", "fraction"), rows)


def radius_curve(records: Sequence[Record]) -> list[tuple[float, float]]:
    """(radius, certified fraction) from whatever radius information the records carry."""
    per: dict[float, list[bool]] = defaultdict(list)
    for r in records:
        radii, at = r.values.get("radii"), r.values.get("certified_at")
        if isinstance(radii, list) and isinstance(at, list) and len(radii) == len(at):
            wrong = r.status is Status.FALSIFIED
            for rad, ok in zip(radii, at, strict=True):
                per[float(rad)].append(bool(ok) and not wrong)
        elif _number(r.values.get("radius")) is not None:
            per[float(r.values["radius"])].append(r.status is Status.CERTIFIED)
    if per:
        return sorted((rad, sum(v) / len(v)) for rad, v in per.items())
    cert = [_number(r.values.get("certified_radius")) for r in records]
    if any(c is not None for c in cert):
        radii = sorted({0.0, *(c for c in cert if c is not None and c > 0)})
        n = len(records)
        return [(rad, sum(c is not None and c >= rad for c in cert) / n) for rad in radii]
    return []


def accuracy_by_radius(records: Sequence[Record]) -> dict[str, list[tuple[float, float]]]:
    """Certified accuracies a record reports at its own `radius` (e.g. a watermark's certified
    trigger-set accuracy per radius), by key."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        radius = _number(r.values.get("radius"))
        if radius is None:
            continue
        for key, v in r.values.items():
            x = _number(v)
            if x is not None and "certified" in key and "accuracy" in key:
                out[key].append((radius, x))
    return {k: sorted(v) for k, v in out.items()}


def patch_curve(records: Sequence[Record]) -> list[tuple[float, float]]:
    per: dict[float, list[bool]] = defaultdict(list)
    for r in records:
        size = _number(r.values.get("patch_size"))
        if size is not None:
            per[size].append(r.status is Status.CERTIFIED)
    return sorted((s, sum(v) / len(v)) for s, v in per.items())


def scalar_values(records: Sequence[Record], match) -> dict[str, list[float]]:
    """Finite numeric values under keys for which `match(key)` holds, by key."""
    out: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for key, v in r.values.items():
            x = _number(v)
            if x is not None and match(key):
                out[key].append(x)
    return dict(out)


def curve_table(title: str, xname: str, curve) -> Table:
    return Table(title, (xname, "certified fraction"), curve)


def record_tables(records: Sequence[Record]) -> tuple[Table, ...]:
    tables = [status_table(records)]
    if curve := radius_curve(records):
        tables.append(curve_table("certified accuracy by radius", "radius", curve))
    if curve := patch_curve(records):
        tables.append(curve_table("certified accuracy by patch size", "patch size", curve))
    for key, curve in accuracy_by_radius(records).items():
        tables.append(Table(f"{key} by radius", ("radius", key), curve))
    for key, xs in scalar_values(records, lambda k: "regret" in k).items():
        xs = sorted(xs)
        rows = [("items", len(xs)), ("mean", sum(xs) / len(xs)), ("max", xs[-1])]
        tables.append(Table(f"{key}", ("statistic", "value"), rows))
    return tuple(tables)


def render_plots(records: Sequence[Record], out_dir: Path) -> tuple[Path, ...]:
    """Write every figure the records support under `out_dir`; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig, name: str) -> None:
        path = out_dir / name
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)

    counts = Counter(r.status.value for r in records)
    fig, ax = plt.subplots(figsize=(5, 3))
    names = [s.value for s in Status]
    ax.bar(names, [counts.get(n, 0) for n in names], color="#4C72B0")
    ax.set_ylabel("items")
    ax.set_title(f"{len(records)} records by status")
    save(fig, "status.png")

    for name, curve, xlabel in (
        ("certified_vs_radius.png", radius_curve(records), "radius"),
        ("certified_vs_patch_size.png", patch_curve(records), "patch size (pixels per side)"),
    ):
        if curve:
            fig, ax = plt.subplots(figsize=(5, 3.2))
            xs, ys = zip(*curve, strict=True)
            # certified at r implies certified below r: between two measured radii the curve
            # is only known to be at least the value at the larger one (steps-pre)
            ax.plot(xs, ys, marker="o", drawstyle="steps-pre" if "radius" in name else "default")
            ax.set_xlabel(xlabel)
            ax.set_ylabel("certified accuracy")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            save(fig, name)

    reported = accuracy_by_radius(records)
    if reported:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for key, curve in reported.items():
            xs, ys = zip(*curve, strict=True)
            ax.plot(xs, ys, marker="o", label=key.replace("_", " "))
        ax.set_xlabel("radius")
        ax.set_ylabel("certified accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "reported_accuracy_vs_radius.png")

    hists = {
        **scalar_values(records, lambda k: "regret" in k),
        **scalar_values(records, lambda k: k in ("margin_lower", "margin_lower_bound")),
    }
    for key, xs in hists.items():
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(xs, bins=min(30, max(5, len(xs) // 3)), color="#55A868")
        ax.set_xlabel(key.replace("_", " "))
        ax.set_ylabel("items")
        save(fig, f"hist_{key}.png")

    seconds = [r.seconds for r in records if r.seconds > 0]
    if seconds:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(seconds, bins=min(30, max(5, len(seconds) // 3)), color="#C44E52")
        ax.set_xlabel("seconds per item")
        ax.set_ylabel("items")
        save(fig, "seconds.png")
    return tuple(written)


def run_axis(run_dir: Path) -> tuple[str, float] | None:
    """('patch size', side) or ('radius', eps) of a run, from the spec.json it saved."""
    import json

    from .ir import LpBall, PatchSet
    from .serialize import load_document

    path = run_dir / "spec.json"
    if not path.exists():
        return None
    try:
        (spec,) = load_document(json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None
    if isinstance(spec.threat, PatchSet):
        return "patch size", float(max(spec.threat.largest()))
    if isinstance(spec.threat, LpBall):
        return "radius", float(spec.threat.eps)
    return None


def compare_runs(runs: Sequence[tuple[Path, Sequence[Record]]], out_dir: Path):
    """Certified fraction per run against each run's patch size or radius (one table and one
    PNG per axis); runs whose spec has neither are left out."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_axis: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for run_dir, records in runs:
        axis = run_axis(run_dir)
        if axis is None or not records:
            continue
        cert = sum(r.status is Status.CERTIFIED for r in records) / len(records)
        by_axis[axis[0]].append((axis[1], cert, run_dir.name))
    tables, plots = [], []
    out_dir.mkdir(parents=True, exist_ok=True)
    for axis, points in by_axis.items():
        points.sort()
        tables.append(Table(f"certified accuracy by {axis}", (axis, "certified", "run"), points))
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o")
        ax.set_xlabel(axis)
        ax.set_ylabel("certified accuracy")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        path = out_dir / f"compare_certified_vs_{axis.replace(' ', '_')}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        plots.append(path)
    return tuple(tables), tuple(plots)
