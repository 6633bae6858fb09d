"""The `threatlang` command: check, compile, run, report.

Exit codes: 0 success; 2 a bad spec, a usage error or a capability error (one clear message, no
traceback); 1 a failure while running (set THREATLANG_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__
from .errors import CapabilityError, SpecError, UsageError, render
from .paths import output_dir, output_file


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.threat"))
            if not found:
                raise UsageError(f"{p} holds no .threat files.")
            out.extend(found)
        else:
            out.append(p)
    return out


def _sources(paths) -> dict[str, str]:
    sources = {}
    for p in paths:
        try:
            sources[str(p)] = Path(p).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            pass
    return sources


def _report_errors(diagnostics, sources: dict[str, str]) -> None:
    for d in diagnostics:
        source = sources.get(d.span.file) if d.span is not None else None
        print(render(d, source), file=sys.stderr)
    n = len(diagnostics)
    print(f"{n} error{'s' if n != 1 else ''}", file=sys.stderr)


def _console(quiet: bool = False):
    """A rich console; piped output gets a wide fixed width so table headers are not cut."""
    from rich.console import Console

    return Console(quiet=quiet, width=None if sys.stdout.isatty() else 160)


def cmd_check(args) -> int:
    from .check import untrained_builtin
    from .compile import capable_backend
    from .parse import load_all

    failed = False
    files = _files(args.files)
    for path in files:
        try:
            specs = load_all(path)
            problems = []
            for spec in specs:  # backend options and capabilities too (light: no torch)
                try:
                    capable_backend(spec)
                except CapabilityError as err:
                    problems.extend(err.diagnostics)
                problems.extend(untrained_builtin(spec))  # the CLI cannot hand in weights
            if problems:
                raise SpecError(problems)
        except SpecError as err:
            _report_errors(err.diagnostics, _sources([path]))
            failed = True
            continue
        if not args.quiet:
            names = ", ".join(s.name for s in specs)
            print(f"ok  {path}  ({names})")
    return 2 if failed else 0


def cmd_compile(args) -> int:
    from .parse import load_all
    from .serialize import document

    specs = load_all(args.file)
    if args.spec:
        specs = tuple(s for s in specs if s.name == args.spec)
        if not specs:
            raise UsageError(f"{args.file} has no spec named {args.spec!r}.")
    if args.emit in ("vnnlib", "abcrown"):
        return _emit_files(specs, args)
    if args.emit == "json":
        text = json.dumps(document(specs), indent=2) + "\n"
    elif args.emit == "ir":
        text = "\n\n".join(repr(s) for s in specs) + "\n"
    elif args.emit == "plan":
        from .compile import compile_spec

        parts = []
        for s in specs:
            backend, plan = compile_spec(s)
            parts.append(f"spec {s.name} -> backend {backend.name}\n{plan.describe()}")
        text = "\n\n".join(parts) + "\n"
    else:
        raise UsageError(f"unknown --emit {args.emit!r}")
    if args.output:
        output_file(args.output).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def _emit_files(specs, args) -> int:
    from .interop.abcrown import export_abcrown
    from .interop.export import export_vnnlib

    if not args.output:
        raise UsageError(f"--emit {args.emit} writes a directory: add --output DIR.")
    output_dir(args.output)
    for spec in specs:
        out = Path(args.output) / spec.name if len(specs) > 1 else Path(args.output)
        common = {"weights": args.weights, "limit": args.limit, "allow_code": args.allow_code}
        if args.emit == "abcrown":
            done = export_abcrown(spec, out, **common)
            print(f"{spec.name}: {len(done.configs)} alpha-beta-CROWN configs in {out}")
            continue
        result = export_vnnlib(spec, out, version=args.vnnlib_version, split=args.split, **common)
        print(
            f"{spec.name}: {len(result.properties)} properties, {result.onnx}, {result.instances}"
        )
    return 0


def cmd_import_vnnlib(args) -> int:
    from .interop.import_vnnlib import import_vnnlib
    from .parse import load_all

    output_file(args.output)  # its folder is created if missing
    path = import_vnnlib(
        args.path,
        args.output,
        onnx=args.onnx,
        name=args.name,
        recognise=args.recognise,
        allow_outside=args.allow_outside_paths,
    )
    specs = load_all(path)  # what we wrote must parse and check
    data = path.with_suffix(".npz")
    names = ", ".join(s.name for s in specs)
    print(
        f"wrote {path} (spec{'s' if len(specs) > 1 else ''} {names})"
        + (f" and {data}" if data.exists() else "")
    )
    return 0


def cmd_backends(args) -> int:
    """What every installed backend plugin accepts, read from its declarations (no torch)."""
    from .backends.registry import backends, missing_modules

    for b in backends():
        caps = b.capabilities.describe()
        missing = missing_modules(b)
        state = f"needs {', '.join(missing)}" if missing else "ready"
        print(f"{b.name} (priority {b.capabilities.priority}, {state})")
        for key in ("families", "properties", "actions", "data", "architectures"):
            if caps[key]:
                print(f"  {key}: {', '.join(caps[key])}")
    return 0


def cmd_run(args) -> int:

    from .api import run
    from .parse import load
    from .render import print_summary

    if args.spec is None or Path(args.file).suffix == ".csv":
        from .instance_set import is_instance_set

        if is_instance_set(args.file):
            return _run_set(args)
    spec = load(args.file, name=args.spec)
    if args.threads is not None:
        if args.threads < 1:
            raise UsageError("--threads must be at least 1.")
        import torch

        torch.set_num_threads(args.threads)
    console = _console(quiet=args.quiet)
    result = run(
        spec,
        output=args.output,
        resume=args.resume,
        overwrite=args.overwrite,
        quiet=args.quiet,
        device=args.device,
        allow_code=args.allow_code,
        seed=args.seed,
        console=console,
        executor=args.executor,
        address=args.address,
        workers=args.workers,
    )
    print_summary(_console(), result.summary, result.out_dir) if not args.quiet else None
    return 0


def _run_set(args) -> int:
    """Every spec of a multi-spec file (or row of an instances.csv) in this one process, each in
    its own run directory under --output, with results.csv there (see `instance_set`)."""
    from .instance_set import RunSettings, read_set, run_set, table
    from .render import print_table

    root = Path(args.output) if args.output else Path("runs") / Path(args.file).stem
    console = _console(quiet=args.quiet)
    settings = RunSettings(args.device, args.allow_code, args.seed, args.threads)
    instances = read_set(args.file, root)
    if args.spec is not None:  # one instance of an instances.csv
        instances = [i for i in instances if i.name == args.spec]
        if not instances:
            raise UsageError(f"{args.file} has no instance named {args.spec!r}.")
    outcomes = run_set(
        instances,
        root,
        settings,
        resume=args.resume,
        overwrite=args.overwrite,
        executor=args.executor,
        address=args.address,
        workers=args.workers,
        on_outcome=lambda o: console.print(f"{o.instance}: {o.verdict.value} {o.seconds:.2f}s"),
    )
    print_table(console, table(outcomes))
    console.print(f"results: {root / 'results.csv'}")
    return 1 if any(o.verdict.value == "error" for o in outcomes) else 0


def cmd_report(args) -> int:

    from .plots import compare_runs
    from .render import print_table

    console = _console()
    runs = []
    for run_dir in map(Path, args.run_dirs):
        if len(args.run_dirs) > 1:
            console.rule(str(run_dir))
        runs.append((run_dir, _report_one(console, run_dir, args)))
    if len(runs) > 1:
        out = Path(args.plots) if args.plots else runs[0][0] / "report"
        with_records = [(d, r) for d, r in runs if r is not None]
        tables, plots = compare_runs(with_records, out)
        for table in tables:
            print_table(console, table)
        for path in plots if not args.no_plots else ():
            console.print(f"plot: {path}")
    return 0


def _report_one(console, run_dir: Path, args):
    """Print one run's saved summary and its record-derived tables; write its plots."""
    from .plots import record_tables, render_plots
    from .records import read_records
    from .render import print_table

    summary_path, records_path = run_dir / "summary.json", run_dir / "records.jsonl"
    if not records_path.exists() and not summary_path.exists():
        raise UsageError(
            f"{run_dir} has no records.jsonl or summary.json; pass the --output directory of a run."
        )
    if summary_path.exists():
        data = _read_summary(summary_path)
        for table in data["tables"]:
            print_table(console, table)
        headline = {
            k: v for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }
        if headline:
            console.print(", ".join(f"{k} = {v:.4g}" for k, v in headline.items()))
    if not records_path.exists():
        return None
    records = read_records(records_path)
    for table in record_tables(records):
        print_table(console, table)
    if not args.no_plots:
        many = len(args.run_dirs) > 1
        out = run_dir / "report" if not args.plots or many else Path(args.plots)
        for path in render_plots(records, out):
            console.print(f"plot: {path}")
    return records


def _read_summary(path: Path) -> dict:
    """A run's summary.json, its tables as `Table`s; a corrupt file is one sentence."""
    from .report import Table

    def corrupt(why: str) -> UsageError:
        return UsageError(
            f"{path} is not a readable run summary ({why}); rerun the spec with --resume to "
            "rewrite it from the records."
        )

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise corrupt(f"invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise corrupt(str(err).splitlines()[0]) from None
    if not isinstance(data, dict):
        raise corrupt(f"a JSON {type(data).__name__}, not an object")
    try:
        tables = [Table.from_json(t) for t in data.get("tables", [])]
    except (KeyError, TypeError, AttributeError) as err:
        raise corrupt(f"a malformed table: {type(err).__name__} {err}") from None
    return {**data, "tables": tables}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="threatlang",
        description="Declarative threat specifications for neural networks: check, compile, run.",
    )
    parser.add_argument("--version", action="version", version=f"threatlang {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="parse and validate spec files (no computation)")
    p.add_argument("files", nargs="+", help=".threat files or directories of them")
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("backends", help="list the installed backend plugins and what they accept")
    p.set_defaults(func=cmd_backends)

    p = sub.add_parser("compile", help="emit the IR, its JSON form, or the backend plan")
    p.add_argument("file")
    p.add_argument("--emit", choices=["ir", "json", "plan", "vnnlib", "abcrown"], default="json")
    p.add_argument("--spec", help="pick one spec of a multi-spec file by name")
    p.add_argument("--output", "-o", help="write to this file (or directory for vnnlib)")
    p.add_argument(
        "--weights", help="vnnlib/abcrown: state dict for a builtin model (e.g. RUN_DIR/model.pt)"
    )
    p.add_argument(
        "--vnnlib-version",
        type=int,
        choices=[1, 2],
        default=1,
        help="vnnlib: 1 = VNN-COMP X_i/Y_j files (default), 2 = VNN-LIB 2.0",
    )
    p.add_argument("--limit", type=int, help="vnnlib/abcrown: only the first N test examples")
    p.add_argument(
        "--split",
        action="store_true",
        help="vnnlib: one property per patch placement (plain boxes) instead of one disjunction",
    )
    p.add_argument(
        "--allow-code", action="store_true", help='allow python("module:function") models'
    )
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "import-vnnlib", help="turn VNN-COMP instances (onnx + box properties) into a spec"
    )
    p.add_argument("path", help="instances.csv, or one .vnnlib file with --onnx")
    p.add_argument("--onnx", help="the network of a single .vnnlib file")
    p.add_argument("--output", "-o", required=True, help="the .threat file to write (and .npz)")
    p.add_argument("--name", help="spec name (default: the output file's stem)")
    p.add_argument(
        "--recognise",
        action="store_true",
        help="label_unchanged instances as one linf-ball/patch spec over their centres "
        "(certify ibp) instead of one box spec per instance (certify bab)",
    )
    p.add_argument(
        "--allow-outside-paths",
        action="store_true",
        help="let instances.csv name files outside its own folder",
    )
    p.set_defaults(func=cmd_import_vnnlib)

    p = sub.add_parser(
        "run",
        help="compile a spec for its backend and run it; a multi-spec file or an instances.csv "
        "runs every instance (results.csv in --output)",
    )
    p.add_argument("file")
    p.add_argument("--spec", help="pick one spec of a multi-spec file by name")
    p.add_argument("--output", "-o", help="run directory (default runs/SPEC_NAME)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output (same spec): skip work items already in records.jsonl",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the results of an earlier run in --output (otherwise it is refused)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or tables")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--seed", type=int, help="override the spec's seed")
    p.add_argument(
        "--allow-code", action="store_true", help='allow python("module:function") models'
    )
    p.add_argument(
        "--executor",
        choices=["inprocess", "ray"],
        default="inprocess",
        help="where per-example work runs (default inprocess)",
    )
    p.add_argument("--address", help="an existing Ray cluster (default: start a local one)")
    p.add_argument("--workers", type=int, help="Ray workers (default: one per CPU)")
    p.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads in this process (default: torch's choice; 1 is often "
        "fastest for small models on a busy machine)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="re-render runs' tables and plots from their records")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="one run, or several to compare")
    p.add_argument(
        "--plots",
        help="where to write the PNGs (default RUN_DIR/report; with several runs, "
        "the comparison goes here and each run's own plots to RUN_DIR/report)",
    )
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except SpecError as err:
        files = {d.span.file for d in err.diagnostics if d.span is not None}
        _report_errors(err.diagnostics, _sources(files))
        return 2
    except CapabilityError as err:
        files = {d.span.file for d in err.diagnostics if d.span is not None}
        print("no backend can run this spec:", file=sys.stderr)
        _report_errors(err.diagnostics, _sources(files))
        return 2
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun with --resume to continue", file=sys.stderr)
        return 130
    except Exception as err:  # a failure while computing: one line unless debugging
        if os.environ.get("THREATLANG_DEBUG"):
            raise
        print(
            f"error: {type(err).__name__}: {err} (THREATLANG_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
