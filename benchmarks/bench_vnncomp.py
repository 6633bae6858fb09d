"""A VNN-COMP 2021 benchmark (acasxu, mnistfc, verivital, eran, ...: any folder with a
`NAME_instances.csv`) run as one instance set, beside the competition's published results for
the same instances.

The data stays outside the repository: fetch github:stanleybak/vnncomp2021 (benchmarks) and
github:stanleybak/vnncomp2021_results (results_csv/*.csv) and pass the folders.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/bench_vnncomp.py \
        --vnncomp /work/vnncomp/vnncomp2021 --results /work/vnncomp/results \
        --benchmark acasxu --out /tmp/acas_ours [--engine marabou] [--every 4] [--props 1 2]

`threatlang run` does the work (one process, `results.csv`, resumable: rerun the command to
continue). Several runs (say `--every 4 --offset 0..3`, in parallel) are compared as one with
`--merge OUT0 OUT1 ... --out MERGED`. The table counts decided / wrong / unknown per tool on the instances run here, with
median and max time: "wrong" is a verdict that contradicts the consensus of the published tools
(the verdict most of the competition's tools gave, as the competition scored it). Published times are as the
results repository lists them (their machines, their per-instance overhead included).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
from pathlib import Path

TOOLS = ("a-b-CROWN", "nnenum", "Marabou")
HOLDS, VIOLATED = "holds", "violated"
WORDS = {"unsat": HOLDS, "holds": HOLDS, "sat": VIOLATED, "violated": VIOLATED}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vnncomp", type=Path, required=True, help="the vnncomp2021 checkout")
    parser.add_argument("--results", type=Path, required=True, help="vnncomp2021_results")
    parser.add_argument("--benchmark", default="acasxu")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engine", choices=["crown", "marabou"], default="crown")
    parser.add_argument("--every", type=int, default=1, help="every k-th instance (a sample)")
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--props", nargs="*", help="only these property files (stems or numbers)")
    parser.add_argument("--time-limit", type=float, help="cap each instance's limit (seconds)")
    parser.add_argument("--executor", default="inprocess", choices=["inprocess", "ray"])
    parser.add_argument("--workers", type=int)
    parser.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        help="no run: compare the union of these earlier --out folders (e.g. four offsets)",
    )
    args = parser.parse_args()
    if args.merge:
        merge(args)
        return

    rows = select_rows(args)
    args.out.mkdir(parents=True, exist_ok=True)
    subset = write_subset(rows, args)
    ours = run(subset, args)
    published = read_published(args.results, args.benchmark)
    names = [instance_key(r[0], r[1]) for r in rows]
    table = compare(
        names, ours, published, args.engine, read_consensus(args.results, args.benchmark)
    )
    (args.out / "compare.md").write_text(table)
    print(table)


def merge(args) -> None:
    from threatlang.instance_set import read_ledger

    ours: dict[str, tuple[str, float]] = {}
    for folder in args.merge:
        ledger = read_ledger(folder / "runs" / "results.csv")
        ours.update({k: (o.verdict.value, o.seconds) for k, o in ledger.items()})
    names = [n for n in (instance_key(r[0], r[1]) for r in select_rows(args)) if n in ours]
    published = read_published(args.results, args.benchmark)
    consensus = read_consensus(args.results, args.benchmark)
    table = compare(names, ours, published, args.engine, consensus)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compare.md").write_text(table)
    print(table)


def select_rows(args) -> list[list[str]]:
    bench = args.vnncomp / "benchmarks" / args.benchmark
    rows = [r for r in csv.reader((bench / f"{args.benchmark}_instances.csv").open()) if r]
    if args.props:
        wanted = {p if not p.isdigit() else f"prop_{p}" for p in args.props}
        rows = [r for r in rows if Path(r[1]).stem in wanted]
    return rows[args.offset :: args.every]


def write_subset(rows: list[list[str]], args) -> Path:
    """OUT/data/instances.csv for the sample, beside links to (or copies of) its files in the
    benchmark's own layout: the csv names them relative to itself, as the competition's does,
    so `threatlang run` reads it with its default checks (every path inside the csv's folder)."""
    bench = args.vnncomp / "benchmarks" / args.benchmark
    data = args.out / "data"
    lines = []
    for r in rows:
        names = [Path(os.path.normpath(r[k].strip())) for k in (0, 1)]
        for name in names:
            _mirror(bench / name, data / name)
        lines.append(f"{names[0]},{names[1]},{limit(r, args)}\n")
    subset = data / "instances.csv"
    subset.write_text("".join(lines))
    return subset


def _mirror(source: Path, target: Path) -> None:
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system
        shutil.copyfile(source, target)


def limit(row, args) -> str:
    t = float(row[2])
    return f"{min(t, args.time_limit) if args.time_limit else t:g}"


def run(subset: Path, args) -> dict[str, tuple[str, float]]:
    """Our verdicts (VNN-COMP words) and times, keyed by `instance_key`."""
    import attrs
    import torch

    from threatlang.instance_set import Instance, RunSettings, read_ledger, read_set, run_set
    from threatlang.ir.actions import Certify
    from threatlang.ir.options import Option

    torch.set_num_threads(1)
    root = args.out / "runs"
    instances = read_set(subset, root)
    if args.engine == "marabou":
        instances = [
            Instance(
                i.name,
                tuple(
                    attrs.evolve(
                        s,
                        actions=tuple(
                            attrs.evolve(a, options=(*a.options, Option("engine", "marabou")))
                            if isinstance(a, Certify)
                            else a
                            for a in s.actions
                        ),
                    )
                    for s in i.specs
                ),
                i.source,
            )
            for i in instances
        ]
    resume = (root / "results.csv").exists()
    run_set(
        instances,
        root,
        RunSettings(threads=1),
        resume=resume,
        executor=args.executor,
        workers=args.workers,
        on_outcome=lambda o: print(f"{o.instance}: {o.verdict.value} {o.seconds:.2f}s", flush=True),
    )
    return {k: (o.verdict.value, o.seconds) for k, o in read_ledger(root / "results.csv").items()}


def instance_key(onnx: str, vnnlib: str) -> str:
    from threatlang.instance_set import instance_name

    return instance_name(Path(onnx), Path(vnnlib))


def read_published(results: Path, benchmark: str) -> dict[str, dict[str, tuple[str, float]]]:
    """tool -> instance -> (verdict word, seconds)."""
    out: dict[str, dict[str, tuple[str, float]]] = {}
    for tool in TOOLS:
        rows = csv.reader((results / "results_csv" / f"{tool}.csv").open())
        table = {}
        for r in rows:
            if len(r) >= 6 and r[0] == benchmark:
                word = WORDS.get(r[4].strip().lower(), "unknown")
                table[instance_key(r[1], r[2])] = (word, float(r[5]))
        out[tool] = table
    return out


def read_consensus(results: Path, benchmark: str) -> dict[str, str | None]:
    """instance -> the verdict most published tools gave (every tool's csv), None on a tie.

    The competition scored a minority verdict as wrong (-100): on verivital, Marabou's 26
    and nnv's 7. A verdict here that contradicts the majority is counted wrong."""
    votes: dict[str, list[str]] = {}
    for path in sorted((results / "results_csv").glob("*.csv")):
        for r in csv.reader(path.open()):
            if len(r) >= 6 and r[0] == benchmark:
                word = WORDS.get(r[4].strip().lower())
                if word is not None:
                    votes.setdefault(instance_key(r[1], r[2]), []).append(word)
    out: dict[str, str | None] = {}
    for name, words in votes.items():
        holds, violated = words.count(HOLDS), words.count(VIOLATED)
        out[name] = HOLDS if holds > violated else VIOLATED if violated > holds else None
    return out


def compare(names, ours, published, engine: str, consensus: dict[str, str | None]) -> str:
    consensus = {n: consensus.get(n) for n in names}
    columns = [(f"threatlang ({engine}, here)", ours)] + [
        (f"{t} (published)", published[t]) for t in TOOLS
    ]
    lines = [
        f"{len(names)} instances; consensus known for {sum(v is not None for v in consensus.values())}",
        "",
        "| tool | decided | holds | violated | wrong | unknown/timeout | median s (decided) | max s (decided) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, table in columns:
        got = [table.get(n, ("unknown", float("nan"))) for n in names]
        decided = [
            (n, w, s) for n, (w, s) in zip(names, got, strict=True) if w in (HOLDS, VIOLATED)
        ]
        wrong = sum(1 for n, w, _ in decided if consensus[n] is not None and consensus[n] != w)
        times = [s for _, _, s in decided]
        med = f"{statistics.median(times):.2f}" if times else "-"
        top = f"{max(times):.2f}" if times else "-"
        holds = sum(w == HOLDS for _, w, _ in decided)
        lines.append(
            f"| {label} | {len(decided)} | {holds} | {len(decided) - holds} | {wrong} | "
            f"{len(names) - len(decided)} | {med} | {top} |"
        )
    lines += ["", "| instance | consensus | " + " | ".join(c for c, _ in columns) + " |"]
    lines.append("|---" * (2 + len(columns)) + "|")
    for n in names:
        cells = []
        for _, table in columns:
            w, s = table.get(n, ("-", float("nan")))
            cells.append(f"{w} {s:.1f}")
        lines.append(f"| {n} | {consensus[n] or '?'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
