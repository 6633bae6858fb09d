"""The Python API: parse, load, compile and run specs from code.

>>> import threatlang
>>> spec = threatlang.load("specs/quickstart.threat")
>>> result = threatlang.run(spec, output="runs/quick")      # doctest: +SKIP
>>> result.summary.metrics["certified_accuracy"]             # doctest: +SKIP
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import attrs

from .errors import SpecError, UsageError
from .ir import Spec
from .ir.spec import SEED_MAX
from .report import Record, Summary, write_summary


@attrs.frozen
class RunResult:
    summary: Summary
    records: tuple[Record, ...]
    out_dir: Path
    backend: str


def validate(spec: Spec, *, model_given: bool = False, data_given: bool = False) -> Spec:
    """Re-run the cross-node checks on a hand-built spec; raises `SpecError` with every problem.

    A model or data object handed to `run` stands in for the spec's reference, so a spec built
    in Python may leave `model`/`data` out when the caller supplies them."""
    from .check import check_spec, untrained_builtin

    given = {"model": model_given, "data": data_given}
    problems = check_spec(spec, skip=frozenset(k for k, v in given.items() if v))
    if not model_given:
        problems += untrained_builtin(spec)
    if problems:
        raise SpecError(problems)
    return spec


def plan(spec: Spec, *, model_given: bool = False, data_given: bool = False):
    """The `Plan` the selected backend would run (printable with `.describe()`)."""
    from .compile import compile_spec

    return compile_spec(validate(spec, model_given=model_given, data_given=data_given))[1]


def run(
    spec: Spec | str | Path,
    *,
    model: Any = None,
    data: Any = None,
    output: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    device: str = "cpu",
    allow_code: bool = False,
    seed: int | None = None,
    console: Any = None,
    executor: Any = "inprocess",
    address: str | None = None,
    workers: int | None = None,
) -> RunResult:
    """Compile `spec` for the first backend that accepts it and run it.

    Records are appended to `OUTPUT/records.jsonl` as each work item finishes; with
    `resume=True` finished items are skipped. A directory that holds another run's results is
    refused unless `resume` (same spec, checked against its manifest) or `overwrite`; see
    `threatlang.rundir`. `model`/`data` override the spec's references.
    `executor` is `"inprocess"`, `"ray"` (a local cluster, or the one at `address`) or an
    `Executor` object (left open for the caller to close).
    """
    from rich.console import Console

    from .backends.base import RunContext
    from .caller_inputs import bounded_data, check_model
    from .compile import compile_spec
    from .executors import make_executor
    from .parse import load
    from .progress import ProgressFactory
    from .records import RecordLog
    from .rundir import RECORDS, SUMMARY, identity, open_run_dir
    from .serialize import document

    if not isinstance(spec, Spec):
        spec = load(spec)
    validate(spec, model_given=model is not None, data_given=data is not None)
    modes = _modes(model)  # handed back as they came, whatever the checks and backend set
    if data is not None:
        ref = spec.data
        data = bounded_data(data, ref and ref.test_limit, ref and ref.train_limit)
    if model is not None:
        check_model(model, _probe_shape(spec, data) if _outputs_are_tensors(spec) else None)
    console = console or Console(stderr=False, quiet=quiet)
    out_dir = Path(output) if output is not None else Path("runs") / spec.name
    backend, the_plan = compile_spec(spec)  # before the directory: a refused spec leaves no trace
    run_seed = spec.seed if seed is None else seed
    if not (isinstance(run_seed, int) and 0 <= run_seed <= SEED_MAX):
        raise UsageError(f"the seed must be a whole number in 0..{SEED_MAX}, got {run_seed!r}.")
    ident = identity(spec, run_seed, model, data)  # a missing model/data file stops here
    with open_run_dir(out_dir, ident, resume=resume, overwrite=overwrite) as run_dir:
        log = RecordLog(
            out_dir / RECORDS, resume=resume, overwrite=True, on_append=run_dir.note_checkpoints
        )
        if run_dir.lock.stale:
            print(
                f"note: {out_dir} was locked by a run that is no longer running "
                f"({run_dir.lock.stale}); taking it over.",
                file=sys.stderr,
            )
        if log.dropped is not None:
            print(
                f"note: dropped the torn last line of {log.path} (a write cut short when the "
                f"run was killed; its item is redone): {log.dropped[:80]!r}",
                file=sys.stderr,
            )
        run_dir.begin(backend.name, document([spec]))
        owned = isinstance(executor, str)
        the_executor = make_executor(executor, address, workers, device) if owned else executor
        ctx = RunContext(
            out_dir=out_dir,
            records=log,
            progress=ProgressFactory(console, quiet=quiet),
            console=console,
            seed=run_seed,
            device=device,
            model=model,
            data=data,
            allow_code=allow_code,
            resume=resume,
            executor=the_executor,
        )
        try:
            summary = the_plan.run(ctx)
        finally:
            _restore_modes(modes)
            if owned:
                the_executor.close()
        if getattr(the_executor, "used", True) is False:
            console.print(
                f"[yellow]note:[/] backend {backend.name} ran its work in this process; "
                f"--executor {the_executor.name} had no work items to distribute."
            )
        write_summary(out_dir / SUMMARY, summary, spec.name, backend.name)
        run_dir.finish()
        return RunResult(summary, log.all(), out_dir, backend.name)


def _outputs_are_tensors(spec: Spec) -> bool:
    """Properties about a classifier's or network's output vector (others, e.g. detection,
    may return structures)."""
    from .ir import LabelUnchanged
    from .ir.properties import OutputsSatisfy

    return isinstance(spec.require, LabelUnchanged | OutputsSatisfy)


def _probe_shape(spec: Spec, data: Any) -> tuple[int, ...] | None:
    """One example's input shape: the spec's `input { shape }`, else the data's."""
    import numpy as np

    if spec.domain is not None:
        return tuple(spec.domain.shape)
    if isinstance(data, dict):
        data = data.get("test")
    try:
        if data is None and spec.data is not None:
            from .data import load_dataset

            return tuple(load_dataset(spec.data, spec.seed).test.x.shape[1:])
        if hasattr(data, "test") and hasattr(data.test, "x"):  # DataSplits
            return tuple(data.test.x.shape[1:])
        if isinstance(data, tuple | list) and len(data) == 2:
            return tuple(np.shape(data[0])[1:])
        if hasattr(data, "__getitem__") and hasattr(data, "__len__") and len(data):
            return tuple(np.shape(data[0][0]))
    except (UsageError, TypeError, IndexError, KeyError, ValueError):
        return None  # the run reports bad data in context
    return None


def _modes(model: Any) -> list[tuple[Any, bool]]:
    """Every submodule of a torch module with its train/eval flag: a backend certifies the
    model in eval mode, and the caller gets it back in the modes it came in."""
    modules = getattr(model, "modules", None)
    return [(m, m.training) for m in modules()] if callable(modules) else []


def _restore_modes(modes: list[tuple[Any, bool]]) -> None:
    for module, training in modes:
        module.training = training  # the flag itself: an overridden train() may not set it
