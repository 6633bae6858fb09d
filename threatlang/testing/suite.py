"""The conformance checks, as pytest tests over every registered case.

A test module runs them with `from threatlang.testing.suite import *` after registering its
cases (`threatlang.testing.register`); `pytest_generate_tests` parametrises each check over
the cases, so a backend that breaks a promise fails under its own name. Every soundness check
first asserts that something was certified: a check over zero certificates cannot fail.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .cases import Case, Run, Trouble, origin_of, registered

#: the checks a case may mark `xfail` (besides `trouble:<name>`)
CHECKS = (
    "declares",
    "certifies",
    "attack",
    "teeth",
    "ladder",
    "counter",
    "schema",
    "documented",
    "ray",
    "resume",
    "sigkill",
)


def _check(name: str):
    assert name in CHECKS or name == "trouble", name

    def mark(fn):
        fn.conformance_check = name
        return fn

    return mark


def pytest_generate_tests(metafunc) -> None:
    """Parametrise each check over the registered cases (troubles: over each case's)."""
    check = getattr(metafunc.function, "conformance_check", None)
    if check is None:
        return
    params = []
    for case in registered():
        if check == "trouble":
            for trouble in case.troubles:
                key = f"trouble:{trouble.name}"
                params.append(pytest.param(case, trouble, id=f"{case.id}-{trouble.name}",
                                           marks=_xfail(case, key)))  # fmt: skip
        else:
            params.append(pytest.param(case, id=case.id, marks=_xfail(case, check)))
    names = ("case", "trouble") if check == "trouble" else "case"
    metafunc.parametrize(names, params)


def _xfail(case: Case, key: str) -> list:
    """A case that does not meet a check yet is a strict xfail whose reason names what is
    missing (an unexpected pass fails, so the mark gets removed)."""
    if key in case.xfail:
        return [pytest.mark.xfail(strict=True, reason=case.xfail[key])]
    return []


def execute(
    case: Case,
    directory: Path,
    out: Path,
    *,
    resume: bool = False,
    executor="inprocess",
    trouble: Trouble | None = None,
) -> Run:
    """Run `case` with its files in `directory` and its results in `out`."""
    import threatlang

    directory.mkdir(parents=True, exist_ok=True)
    kwargs = case.prepare(directory)
    text = case.spec_text(directory)
    if trouble is not None:
        text, kwargs = trouble.spec(text), trouble.kwargs(kwargs)
    (directory / "spec.threat").write_text(text)
    result = threatlang.run(
        directory / "spec.threat",
        output=out,
        quiet=True,
        resume=resume,
        executor=executor,
        **kwargs,
    )
    return Run(case, directory, out, kwargs, result)


@pytest.fixture(scope="session")
def baseline(tmp_path_factory):
    """`baseline(case)`: the case run once, uninterrupted and in-process (cached)."""
    runs: dict[str, Run] = {}

    def get(case: Case) -> Run:
        if case.id not in runs:
            root = tmp_path_factory.mktemp(case.id)
            runs[case.id] = execute(case, root / "case", root / "run")
        return runs[case.id]

    return get


@pytest.fixture(scope="module")
def conformance_ray():
    """A local two-CPU Ray cluster (skipped when ray is not installed)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    if started:
        ray.shutdown()


def certified(run: Run) -> list[str]:
    """The certified items; fails when there are none (nothing to hold to soundness)."""
    ids = run.certified
    assert ids, (
        f"case {run.case.id} certified nothing, so its soundness cannot be checked: "
        "make its data or model certifiable again"
    )
    return ids


def comparable_records(run: Run) -> list[dict]:
    """Records as written, less wall times."""
    out = []
    for line in (run.out / "records.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("seconds", None)
        rec["values"] = {k: v for k, v in rec["values"].items() if k not in run.case.volatile}
        out.append(rec)
    return out


def comparable_metrics(run: Run) -> dict:
    """Summary metrics less stage and solve times."""
    timed = ("_seconds", "seconds", "solve_time_mean", "solve_time_median", "solve_time_p95")
    return {
        k: v
        for k, v in run.result.summary.metrics.items()
        if not k.endswith(timed) and k not in run.case.volatile
    }


# -------------------------------------------------------------------------- declarations
@_check("declares")
def test_backend_declares_itself_certifying(case: Case) -> None:
    from threatlang.backends.registry import backend_named

    caps = backend_named(case.backend).capabilities
    assert caps.certifies, f"{case.backend}: Capabilities(certifies=True) is not declared"
    assert caps.summary is not None, f"{case.backend}: Capabilities(summary=...) is not declared"


# ----------------------------------------------------------------------------- soundness
@_check("certifies")
def test_the_case_certifies_something(case: Case, baseline) -> None:
    run = baseline(case)
    assert run.result.backend == case.backend
    certified(run)


@_check("attack")
def test_certified_items_survive_the_strongest_attack(case: Case, baseline) -> None:
    run = baseline(case)
    ids = certified(run)
    assert case.attack(run, ids) == {}


@_check("teeth")
def test_the_attack_confirms_what_the_backend_falsified(case: Case, baseline) -> None:
    """The suite's attack has teeth: it breaks the items the backend found counterexamples
    for (beyond a wrong clean prediction)."""
    run = baseline(case)
    clean = case.clean(run)
    falsified = [
        r.id for r in run.result.records if r.status.value == "falsified" and r.id in clean
    ]
    if not falsified:
        pytest.skip(f"{case.id}: the backend falsified nothing to confirm")
    assert set(case.attack(run, falsified)) == set(falsified)


@_check("trouble")
def test_time_outs_and_numerical_trouble_are_never_certified(
    case: Case, trouble: Trouble, tmp_path, monkeypatch
) -> None:
    trouble.patch(monkeypatch)
    run = execute(case, tmp_path / "case", tmp_path / "run", trouble=trouble)
    records = run.result.records
    assert records, "the run recorded nothing"
    assert [r.id for r in records if r.status.value == "certified"] == []
    assert all(r.reason for r in records if r.status.value != "falsified")


@_check("ladder")
def test_certified_at_most_empirical_at_most_clean(case: Case, baseline) -> None:
    run = baseline(case)
    ids = certified(run)
    assert set(ids) <= case.clean(run), "an item is certified whose clean point fails"
    rows = case.ladder(run)
    assert rows
    for what, cert, emp, clean in rows:
        assert cert <= emp + 1e-12 and emp <= clean + 1e-12, (what, cert, emp, clean)


# --------------------------------------------------------------------------------- summary
@_check("counter")
def test_summary_carries_the_soundness_counter(case: Case, baseline) -> None:
    from threatlang.backends.capabilities import SOUNDNESS_COUNTER

    run = baseline(case)
    certified(run)
    metrics = run.result.summary.metrics
    assert SOUNDNESS_COUNTER in metrics, f"no {SOUNDNESS_COUNTER!r} in {sorted(metrics)}"
    value = metrics[SOUNDNESS_COUNTER]
    assert isinstance(value, int) and not isinstance(value, bool)
    assert value == 0


@_check("schema")
def test_summary_validates_against_the_declared_schema(case: Case, baseline) -> None:
    from threatlang.backends.registry import backend_named
    from threatlang.schema import summary_problems

    run = baseline(case)
    schema = backend_named(case.backend).capabilities.summary
    assert schema is not None, f"{case.backend} declares no Capabilities(summary=...)"
    assert summary_problems(schema, run.result.summary.metrics) == []
    on_disk = json.loads((run.out / "summary.json").read_text())
    assert summary_problems(schema, {k: on_disk[k] for k in run.result.summary.metrics}) == []


@_check("documented")
def test_summary_schema_documents_every_metric(case: Case) -> None:
    """Each metric says what it means (`#:` comment or `metadata={"doc": ...}`), so
    docs/summaries.md (tools/gen_summaries.py) documents it."""
    from threatlang.backends.registry import backend_named
    from threatlang.schema import summary_fields

    schema = backend_named(case.backend).capabilities.summary
    assert schema is not None, f"{case.backend} declares no Capabilities(summary=...)"
    assert [f.name for f in summary_fields(schema) if not f.meaning] == []


# ---------------------------------------------------------------------- executors, resume
def truncated_copy(whole: Run, out: Path) -> list[str]:
    """A copy of `whole`'s run directory with the second half of its records lost; returns
    the record lines kept."""
    shutil.copytree(whole.out, out)
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    assert len(lines) >= 2, "too few records to cut"
    kept = lines[: len(lines) // 2]
    (out / "records.jsonl").write_text("".join(kept))
    (out / "summary.json").unlink(missing_ok=True)
    return kept


@pytest.mark.slow
@_check("ray")
def test_in_process_and_ray_give_identical_records(
    case: Case, baseline, conformance_ray, tmp_path
) -> None:
    """The same records and metrics on a local 2-worker Ray cluster, for a whole run and for
    an in-process run cut short and resumed on Ray."""
    from threatlang.executors import RayExecutor

    here = baseline(case)
    ray_executor = RayExecutor(workers=2)
    there = execute(case, tmp_path / "case", tmp_path / "run", executor=ray_executor)
    if case.distributes:
        assert ray_executor.used, "the work items never reached the Ray workers"
    assert comparable_records(there) == comparable_records(here)
    assert comparable_metrics(there) == comparable_metrics(here)
    kept = truncated_copy(here, tmp_path / "cut")
    resumed = execute(
        case, here.dir, tmp_path / "cut", resume=True, executor=RayExecutor(workers=2)
    )
    assert (tmp_path / "cut" / "records.jsonl").read_text().splitlines(keepends=True)[
        : len(kept)
    ] == kept
    assert comparable_records(resumed) == comparable_records(here)
    assert comparable_metrics(resumed) == comparable_metrics(here)


@_check("resume")
def test_resume_after_losing_half_the_records_equals_an_uninterrupted_run(
    case: Case, baseline, tmp_path
) -> None:
    whole = baseline(case)
    out = tmp_path / "run"
    kept = truncated_copy(whole, out)
    resumed = execute(case, whole.dir, out, resume=True)  # the same files: the same spec
    assert (out / "records.jsonl").read_text().splitlines(keepends=True)[: len(kept)] == kept
    assert comparable_records(resumed) == comparable_records(whole)
    assert comparable_metrics(resumed) == comparable_metrics(whole)


@pytest.mark.slow
@_check("sigkill")
def test_sigkill_then_resume_equals_an_uninterrupted_run(case: Case, baseline, tmp_path):
    """A real SIGKILL: the case runs in a subprocess (`threatlang.testing.driver`) that pauses
    after each record it appends, is killed once the first record is on disk, and is resumed
    here."""
    whole = baseline(case)
    out = tmp_path / "run"
    origin = origin_of(case.id)
    assert origin, f"case {case.id} was registered from no file; the subprocess cannot load it"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "threatlang.testing.driver", origin, case.id,
           str(tmp_path / "case"), str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    log = out / "records.jsonl"
    deadline = time.monotonic() + 300
    while not (log.exists() and log.read_text().count("\n") >= 1):
        assert proc.poll() is None, f"the run ended before its first record: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no record within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    proc.stderr.close()
    written = log.read_text().count("\n")
    assert 1 <= written < len(whole.result.records), "the kill did not interrupt the run"
    resumed = execute(case, tmp_path / "case", out, resume=True)
    assert comparable_records(resumed) == comparable_records(whole)
    assert comparable_metrics(resumed) == comparable_metrics(whole)


__all__ = [
    "CHECKS",
    "baseline",
    "certified",
    "comparable_metrics",
    "comparable_records",
    "conformance_ray",
    "execute",
    "pytest_generate_tests",
    "test_backend_declares_itself_certifying",
    "test_certified_at_most_empirical_at_most_clean",
    "test_certified_items_survive_the_strongest_attack",
    "test_in_process_and_ray_give_identical_records",
    "test_resume_after_losing_half_the_records_equals_an_uninterrupted_run",
    "test_sigkill_then_resume_equals_an_uninterrupted_run",
    "test_summary_carries_the_soundness_counter",
    "test_summary_schema_documents_every_metric",
    "test_summary_validates_against_the_declared_schema",
    "test_the_attack_confirms_what_the_backend_falsified",
    "test_the_case_certifies_something",
    "test_time_outs_and_numerical_trouble_are_never_certified",
]
