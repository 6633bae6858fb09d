"""Tables 2.3 / 2.5 from a spec: every `train` action of a chapter-2 comparison spec as its own
row, run in parallel worker processes, printed as a markdown table beside the chapter's MNIST
numbers.

Each row runs the spec with only that `train` action (same seed, so the same initial weights
and batches as every other row) through `threatlang.run`, in a child process that measures the CPU
seconds of its training stage (and the parent those of the whole row, with `wait4`): on a
shared, loaded machine CPU seconds compare strategies more faithfully than wall seconds (the
backend's own `train s`, wall clock, is printed too).
Finished rows are kept in `--out/<row>.json` and not rerun, so a long table can be filled in
several sittings; `--rerun` forces them.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/run_table23.py \
        specs/table23_mnist5k_cut.threat --jobs 2 --only 'all_patch,random_patch(10)'
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import attrs

# Chapter 2, MNIST rows: (clean %, certified %, training hours) per (patch size, strategy).
# Table 2.3 (the fixed architecture) and Table 2.5 (pooling; a 4-layer CNN, its own all-patch).
CHAPTER = {
    (2, "all_patch"): (98.5, 91.5, 9.3),
    (2, "random_patch(1)"): (98.5, 82.9, 0.2),
    (2, "random_patch(5)"): (98.6, 86.6, 0.3),
    (2, "random_patch(10)"): (98.6, 87.7, 0.3),
    (2, "guided_patch(10)"): (98.6, 88.9, 2.2),
    (2, "pooled_patch 2"): (98.0, 91.1, 15.8),
    (2, "pooled_patch 4"): (97.2, 89.9, 13.2),
    (5, "all_patch"): (92.0, 60.4, 8.4),
    (5, "random_patch(1)"): (96.9, 24.1, 0.4),
    (5, "random_patch(5)"): (95.8, 42.1, 0.3),
    (5, "random_patch(10)"): (95.6, 49.6, 0.3),
    (5, "guided_patch(10)"): (95.0, 53.1, 2.6),
    (5, "pooled_patch 2"): (85.2, 54.2, 11.6),
    (5, "pooled_patch 4"): (70.4, 38.3, None),
}
# Table 2.5's own all-patch row (the pooled rows' reference; hours on its CNN).
CHAPTER_25_ALL = {2: (98.5, 91.6, 20.1), 5: (90.0, 59.7, 16.3)}


def _label(train) -> str:
    """The row name, as the ibp backend's comparison table names it."""
    name = train.strategy + (f"({train.k})" if train.k is not None else "")
    if train.strategy == "pooled_patch":
        pool = next((o.value for o in train.options if o.name == "pool"), 2)
        name += " " + ("-".join(str(b) for b in pool) if isinstance(pool, tuple) else str(pool))
    return name


def _rows(spec) -> list[tuple[int, str]]:
    from threatlang.ir.actions import Train

    return [(i, _label(a)) for i, a in enumerate(spec.actions) if isinstance(a, Train)]


def _row_spec(spec, index: int):
    """The spec with only its `index`-th action among the trains (other actions kept)."""
    from threatlang.ir.actions import Train

    keep = tuple(a for i, a in enumerate(spec.actions) if i == index or not isinstance(a, Train))
    return attrs.evolve(spec, actions=keep)


def _child(spec_path: str, index: int, out: str) -> None:
    """Run one row in this process and print its metrics, with the CPU seconds of each stage
    (the run's `StageTimings.measure` blocks), as one JSON line."""
    import contextlib

    import torch

    import threatlang
    from threatlang.runtime import StageTimings

    torch.set_num_threads(1)
    stage_cpu: dict[str, float] = {}
    wall_measure = StageTimings.measure

    @contextlib.contextmanager
    def measure(self, stage: str):
        start = time.process_time()
        with wall_measure(self, stage):
            yield
        stage_cpu[stage] = round(time.process_time() - start, 2)

    StageTimings.measure = measure  # this child process only
    spec = _row_spec(threatlang.load(spec_path), index)
    result = threatlang.run(spec, output=out, overwrite=True, quiet=True)
    print(json.dumps({**result.summary.metrics, "stage_cpu_seconds": stage_cpu}))


def _start(spec_path: str, index: int, run_dir: Path) -> subprocess.Popen:
    """A child running one row; its output goes to files (a full pipe would stall it)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, spec_path, "--child", str(index), "--out", str(run_dir)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with (
        open(run_dir.with_suffix(".out"), "w") as out,
        open(run_dir.with_suffix(".err"), "w") as err,
    ):
        return subprocess.Popen(cmd, stdout=out, stderr=err, env=env)


def _finish(
    proc: subprocess.Popen, status: int, usage, run_dir: Path
) -> tuple[dict | None, float, str]:
    """A finished child's metrics (None on failure), CPU seconds, and stderr tail."""
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    if proc.returncode != 0:
        return None, cpu, run_dir.with_suffix(".err").read_text().strip()[-2000:]
    lines = run_dir.with_suffix(".out").read_text().strip().splitlines()
    return json.loads(lines[-1]), cpu, ""


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _train_cpu(r: dict) -> float | None:
    return r.get("stage_cpu_seconds", {}).get("train")


def _table(patch: int, results: dict[str, dict]) -> str:
    """Markdown rows with the time relative to all-patch in training CPU seconds (rows run
    before the per-stage measurement have "-") and in the whole row's CPU seconds."""
    lines = [
        f"| strategy ({patch}x{patch}) | clean | certified | train s (wall) | train CPU s "
        "| x all_patch (train CPU) | row CPU s | x all_patch (row CPU) "
        "| chapter clean / certified / hours |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = results.get("all_patch")

    def ratio(a: float | None, b: float | None) -> str:
        return "-" if a is None or not b else f"{a / b:.2f}"

    for label, r in results.items():
        m = r["metrics"]
        tc = _train_cpu(r)
        ch = CHAPTER.get((patch, label))
        chap = "-" if ch is None else f"{ch[0]}% / {ch[1]}% / {ch[2] if ch[2] else '-'} h"
        lines.append(
            f"| {label} | {_pct(m.get('clean_accuracy'))} | {_pct(m.get('certified_accuracy'))} "
            f"| {m.get('train_seconds', 0):.0f} | {'-' if tc is None else f'{tc:.0f}'} "
            f"| {ratio(tc, base and _train_cpu(base))} | {r['cpu_seconds']:.0f} "
            f"| {ratio(r['cpu_seconds'], base and base['cpu_seconds'])} | {chap} |"
        )
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("spec")
    p.add_argument("--jobs", type=int, default=1, help="rows run at once (worker processes)")
    p.add_argument("--only", default=None, help="comma-separated row labels, e.g. all_patch")
    p.add_argument("--out", default=None, help="default: runs/table23/<spec name>")
    p.add_argument("--rerun", action="store_true", help="rerun rows that already have results")
    p.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        _child(args.spec, args.child, args.out)
        return

    import threatlang
    from threatlang.ir.shapes import mask_size

    spec = threatlang.load(args.spec)
    patch = mask_size(spec.threat.shapes[0])[0]
    out = Path(args.out or Path("runs") / "table23" / spec.name)
    out.mkdir(parents=True, exist_ok=True)
    rows = _rows(spec)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {label for _, label in rows}
        if unknown:
            sys.exit(f"no train action named {', '.join(sorted(unknown))} in {args.spec}.")
        rows = [(i, label) for i, label in rows if label in wanted]
    todo = [
        (i, label)
        for i, label in rows
        if args.rerun or not (out / f"{label.replace(' ', '_')}.json").exists()
    ]
    running: dict[int, tuple[str, subprocess.Popen, Path, float]] = {}
    while todo or running:
        while todo and len(running) < args.jobs:
            i, label = todo.pop(0)
            run_dir = out / label.replace(" ", "_")
            proc = _start(args.spec, i, run_dir)
            running[proc.pid] = (label, proc, run_dir, time.perf_counter())
            print(f"started {label}", file=sys.stderr, flush=True)
        pid, status, usage = os.wait4(-1, 0)  # whichever row finishes first
        if pid not in running:
            continue
        label, proc, run_dir, t0 = running.pop(pid)
        metrics, cpu, err = _finish(proc, status, usage, run_dir)
        wall = time.perf_counter() - t0
        if metrics is None:
            print(f"{label} failed:\n{err}", file=sys.stderr, flush=True)
            continue
        stages = metrics.pop("stage_cpu_seconds", {})
        record = {
            "metrics": metrics,
            "cpu_seconds": round(cpu, 1),
            "wall_seconds": round(wall, 1),
            "stage_cpu_seconds": stages,
        }
        (out / f"{label.replace(' ', '_')}.json").write_text(json.dumps(record, indent=1))
        print(
            f"done {label}: clean {_pct(metrics.get('clean_accuracy'))}, certified "
            f"{_pct(metrics.get('certified_accuracy'))}, CPU {cpu:.0f} s, wall {wall:.0f} s",
            file=sys.stderr,
            flush=True,
        )
    results = {}
    for _, label in _rows(spec):
        path = out / f"{label.replace(' ', '_')}.json"
        if path.exists():
            results[label] = json.loads(path.read_text())
    print(_table(patch, results))


if __name__ == "__main__":
    main()
