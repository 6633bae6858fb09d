"""Running an instance set as one job: every spec of a multi-spec file, or every row of a
VNN-COMP `instances.csv`, in one process (torch, onnx and the engine are imported once).

Each instance gets its own run directory under the set's directory (its records, summary and
resumability are those of a single run); the set keeps `results.csv` in VNN-COMP's form, one
line per finished instance (`instance,verdict,time`), appended as each one ends. That file is
the set's ledger: `resume` skips the instances it lists and restarts the one that was cut off
(its partial run directories are set aside, not deleted). An instances.csv row whose input
set is a union of boxes is one instance with one verdict: the importer writes it as one spec
(`threat boxes`), `holds` when every box holds, `violated` when any box has a confirmed
counterexample, the boxes sharing the instance's time limit. (An instance of several specs,
combined by `combine`, is no longer written by the importer.)

With the Ray executor the instances themselves run in parallel, one per worker.
"""

from __future__ import annotations

import csv
import enum
import time
from pathlib import Path
from typing import Any

import attrs

from .errors import CapabilityError, SpecError, UsageError
from .ir import Spec
from .report import Status, Table

RESULTS = "results.csv"
HEADER = ("instance", "verdict", "time")


class Verdict(enum.Enum):
    """VNN-COMP's result words."""

    HOLDS = "holds"
    VIOLATED = "violated"
    TIMEOUT = "timeout"
    UNKNOWN = "unknown"
    ERROR = "error"


@attrs.frozen
class Instance:
    """One line of the set: a name and the specs that decide it together (one per box)."""

    name: str
    specs: tuple[Spec, ...] = attrs.field(converter=tuple)
    source: str = ""  # onnx,vnnlib of an instances.csv row; empty for a spec file

    @specs.validator
    def _some(self, attribute, value) -> None:
        if not value:
            raise ValueError(f"instance {self.name} has no spec")


@attrs.frozen
class Outcome:
    instance: str
    verdict: Verdict
    seconds: float
    run_dirs: tuple[str, ...] = attrs.field(converter=tuple, default=())
    reason: str = ""


@attrs.frozen
class RunSettings:
    """What every instance's run shares (the `threatlang run` flags)."""

    device: str = "cpu"
    allow_code: bool = False
    seed: int | None = None
    threads: int | None = attrs.field(default=None)

    @threads.validator
    def _threads(self, attribute, value) -> None:
        if value is not None and value < 1:
            raise UsageError("--threads must be at least 1.")


# ------------------------------------------------------------------------------ reading sets
def is_instance_set(path: str | Path) -> bool:
    """An instances.csv, or a spec file holding more than one spec."""
    path = Path(path)
    if path.suffix == ".csv":
        return True
    from .parse import load_all

    return len(load_all(path)) > 1


def read_set(path: str | Path, root: Path) -> list[Instance]:
    """The instances of a spec file (one per spec) or of an instances.csv (imported under
    ROOT/specs, one instance per row)."""
    path = Path(path)
    if path.suffix == ".csv":
        return _from_csv(path, root / "specs")
    from .parse import load_all

    return [Instance(s.name, (s,)) for s in load_all(path)]


def _from_csv(path: Path, spec_dir: Path) -> list[Instance]:
    from .interop.import_vnnlib import import_vnnlib
    from .interop.vnnlib_instances import csv_rows
    from .parse import load_all

    if not path.exists():
        raise UsageError(f"instances file {path} not found.")
    # the importer's reader: size cap, binary refused, every path inside the csv's folder
    # (a list that points elsewhere is imported with `import-vnnlib --allow-outside-paths`)
    rows = csv_rows(path)
    if not rows:
        raise UsageError(f"{path} lists no instances.")
    spec_dir.mkdir(parents=True, exist_ok=True)
    out, used = [], set()
    folder = path.parent.resolve()
    for onnx, vnnlib, timeout in rows:
        name = instance_name(onnx, vnnlib)
        while name in used:
            name += "_"
        used.add(name)
        single = spec_dir / f"{name}.csv"  # keeps the row's timeout for the importer
        single.write_text(f"{onnx.resolve()},{vnnlib.resolve()},{timeout:g}\n")
        written = import_vnnlib(single, spec_dir / f"{name}.threat", name=name, allow_outside=True)
        shown = f"{_relative(onnx, folder)},{_relative(vnnlib, folder)}"
        out.append(Instance(name, load_all(written), shown))
    return out


def _relative(p: Path, folder: Path) -> str:
    try:
        return str(p.resolve().relative_to(folder))
    except ValueError:
        return str(p)


def instance_name(onnx: Path, vnnlib: Path) -> str:
    """`<network>__<property>`, as an identifier."""
    text = f"{onnx.stem}__{vnnlib.stem}"
    text = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return text if not text[0].isdigit() else f"i_{text}"


# ------------------------------------------------------------------------------ the ledger
def read_ledger(path: Path) -> dict[str, Outcome]:
    """The finished instances recorded in `results.csv` (a malformed line is a `UsageError`)."""
    if not path.exists():
        return {}
    done = {}
    rows = list(csv.reader(path.read_text().splitlines()))
    for k, row in enumerate(rows[1:], start=2):
        try:
            name, verdict, seconds = row[0], Verdict(row[1]), float(row[2])
        except (IndexError, ValueError):
            raise UsageError(
                f"{path}:{k} is not an `instance,verdict,time` line; fix or delete it, then "
                "rerun with --resume."
            ) from None
        done[name] = Outcome(name, verdict, seconds)
    return done


def _append(path: Path, outcome: Outcome) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.writer(f)
        if new:
            writer.writerow(HEADER)
        writer.writerow((outcome.instance, outcome.verdict.value, f"{outcome.seconds:.3f}"))
        f.flush()


# ------------------------------------------------------------------------------ running
def run_set(
    instances: list[Instance],
    root: Path,
    settings: RunSettings,
    *,
    resume: bool = False,
    overwrite: bool = False,
    executor: str = "inprocess",
    address: str | None = None,
    workers: int | None = None,
    on_outcome: Any = None,
) -> list[Outcome]:
    """Run every instance not yet in ROOT/results.csv; returns all outcomes in set order.

    Every spec is compiled first, so a spec no backend can run stops the set before any work
    (as a single run would); a failure while running one instance is that instance's `error`
    line and the set goes on."""
    from .compile import compile_spec
    from .executors import make_executor

    for inst in instances:
        for spec in inst.specs:
            compile_spec(spec)
    ledger = root / RESULTS
    if ledger.exists() and not (resume or overwrite):
        raise UsageError(
            f"{ledger} holds the results of an earlier run; pass --resume to continue it or "
            "--overwrite to start again."
        )
    root.mkdir(parents=True, exist_ok=True)
    if overwrite and not resume and ledger.exists():
        ledger.unlink()
    done = read_ledger(ledger) if resume else {}
    todo = [i for i in instances if i.name not in done]
    if resume:
        for inst in todo:
            _set_aside(root, inst)
    items = [(inst, str(root), settings, overwrite) for inst in todo]
    ex = make_executor(executor, address=address, workers=workers, device=settings.device)
    try:
        for outcome in ex.map(run_instance, items):
            _append(ledger, outcome)
            done[outcome.instance] = outcome
            if on_outcome is not None:
                on_outcome(outcome)
    finally:
        ex.close()
    return [done[i.name] for i in instances if i.name in done]


def _set_aside(root: Path, inst: Instance) -> None:
    """An instance cut off mid-run restarts whole (its boxes share one deadline): its run
    directories are renamed `NAME.unfinished-K`, never deleted."""
    for spec in inst.specs:
        d = root / spec.name
        if d.exists():
            k = 1
            while d.with_name(f"{d.name}.unfinished-{k}").exists():
                k += 1
            d.rename(d.with_name(f"{d.name}.unfinished-{k}"))


def with_time_limit(spec: Spec, seconds: float) -> Spec:
    """`spec` with its certify action's time limit lowered to `seconds` (if it has one)."""
    from .ir.actions import Certify

    actions = tuple(
        attrs.evolve(a, time_limit=seconds)
        if isinstance(a, Certify) and a.time_limit is not None and a.time_limit > seconds
        else a
        for a in spec.actions
    )
    return attrs.evolve(spec, actions=actions)


def _time_limit(spec: Spec) -> float | None:
    from .ir.actions import Certify

    return next((a.time_limit for a in spec.actions if isinstance(a, Certify)), None)


def run_instance(item) -> Outcome:
    """One instance, every spec of it in its own run directory. Top-level (Ray pickles it)."""
    from .api import run

    inst, root, settings, overwrite = item
    if settings.threads is not None:
        import torch

        torch.set_num_threads(settings.threads)
    start = time.monotonic()
    limit = _time_limit(inst.specs[0])
    verdicts, dirs, reasons = [], [], []
    for spec in inst.specs:
        out_dir = Path(root) / spec.name
        dirs.append(str(out_dir))
        if limit is not None and len(inst.specs) > 1:  # the boxes of a union share the limit
            left = limit - (time.monotonic() - start)
            if left <= 0:
                verdicts.append(Verdict.TIMEOUT)
                reasons.append(f"time limit {limit:g}s reached before box {spec.name}")
                break
            spec = with_time_limit(spec, round(left, 3))
        try:
            result = run(
                spec,
                output=out_dir,
                overwrite=overwrite,
                quiet=True,
                device=settings.device,
                allow_code=settings.allow_code,
                seed=settings.seed,
            )
        except (UsageError, SpecError, CapabilityError) as err:
            verdicts.append(Verdict.ERROR)
            reasons.append(f"{spec.name}: {err}")
            break
        except Exception as err:  # noqa: BLE001 - a crash is this instance's error line
            verdicts.append(Verdict.ERROR)
            reasons.append(f"{spec.name}: {type(err).__name__}: {err}")
            break
        verdict, reason = verdict_of(result)
        verdicts.append(verdict)
        if reason:
            reasons.append(reason)
        if verdict is Verdict.VIOLATED:
            break  # one box with a counterexample decides the union
    return Outcome(
        inst.name, combine(verdicts), time.monotonic() - start, tuple(dirs), "; ".join(reasons)
    )


def verdict_of(result) -> tuple[Verdict, str]:
    """A run's verdict from its records: every item certified -> holds; any falsified ->
    violated; else timeout if any item timed out, else unknown (with the first reason)."""
    statuses = [r.status for r in result.records]
    reason = next((r.reason for r in result.records if r.reason), "") or ""
    if statuses and all(s is Status.CERTIFIED for s in statuses):
        return Verdict.HOLDS, ""
    if Status.FALSIFIED in statuses:
        return Verdict.VIOLATED, ""
    if Status.ERROR in statuses:
        return Verdict.ERROR, reason
    if Status.TIMEOUT in statuses:
        return Verdict.TIMEOUT, reason
    return Verdict.UNKNOWN, reason


def combine(verdicts: list[Verdict]) -> Verdict:
    """The verdict of a union of boxes from each box's verdict."""
    if Verdict.VIOLATED in verdicts:
        return Verdict.VIOLATED
    if verdicts and all(v is Verdict.HOLDS for v in verdicts):
        return Verdict.HOLDS
    for v in (Verdict.ERROR, Verdict.TIMEOUT):
        if v in verdicts:
            return v
    return Verdict.UNKNOWN


def table(outcomes: list[Outcome]) -> Table:
    counts = {v: sum(o.verdict is v for o in outcomes) for v in Verdict}
    title = "instance set: " + ", ".join(f"{n} {v.value}" for v, n in counts.items() if n)
    rows = [(o.instance, o.verdict.value, round(o.seconds, 3), o.reason[:120]) for o in outcomes]
    return Table(title, ("instance", "verdict", "seconds", "reason"), rows)
