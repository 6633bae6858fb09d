"""The same plan gives the same records in-process and on a local Ray cluster."""

from __future__ import annotations

import pytest

from threatlang.errors import UsageError
from threatlang.executors import InProcessExecutor, RayExecutor, make_executor


def _key(records):
    """Everything a record says except its wall time."""
    return [(r.id, r.status, dict(r.values), r.counterexample, r.reason) for r in records]


def _square(x):
    return x * x


def _fail_on_three(x):
    if x == 3:
        raise UsageError("item 3 is broken")
    return x


def test_in_process_and_ray_give_identical_records(toy, local_ray, tmp_path):
    from threatlang.api import run
    from threatlang.parse import parse

    spec = parse(toy.SPEC)
    here = run(spec, output=tmp_path / "here", quiet=True)
    there = run(spec, output=tmp_path / "ray", quiet=True, executor="ray", workers=2)
    assert len(here.records) == 40
    assert _key(here.records) == _key(there.records)
    assert here.summary.metrics == there.summary.metrics
    statuses = {r.status.value for r in here.records}
    assert "certified" in statuses  # the spec certifies something: the comparison has teeth
    # the records file on disk lists the same items in the same order
    lines = (tmp_path / "ray" / "records.jsonl").read_text().splitlines()
    assert [line.split('"')[3] for line in lines] == [r.id for r in here.records]


def test_a_run_cut_short_in_process_resumes_on_ray(toy, local_ray, tmp_path):
    """Executors are interchangeable across a resume: half the records from one, half from
    the other, the same records as one uninterrupted run."""
    from threatlang.api import run
    from threatlang.parse import parse

    spec = parse(toy.SPEC)
    whole = run(spec, output=tmp_path / "whole", quiet=True)
    cut = tmp_path / "cut"
    run(spec, output=cut, quiet=True)
    lines = (cut / "records.jsonl").read_text().splitlines(keepends=True)
    (cut / "records.jsonl").write_text("".join(lines[:17]))
    resumed = run(spec, output=cut, quiet=True, resume=True, executor="ray", workers=2)
    assert _key(resumed.records) == _key(whole.records)
    assert resumed.summary.metrics == whole.summary.metrics


@pytest.mark.slow  # a second driver process and fresh workers for its job: ~10-20 s
def test_cli_joins_an_existing_cluster_with_address(toy, local_ray, tmp_path):
    """`--executor ray --address` connects a new driver process to a running cluster."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    from threatlang.api import run
    from threatlang.parse import parse

    spec = tmp_path / "toy.threat"
    spec.write_text(toy.SPEC)
    address = local_ray.get_runtime_context().gcs_address
    driver = Path(__file__).with_name("driver.py")
    cmd = [sys.executable, str(driver), "run", str(spec), "-o", str(tmp_path / "remote"), "-q"]
    proc = subprocess.run(
        [*cmd, "--executor", "ray", "--address", address], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    here = run(parse(toy.SPEC), output=tmp_path / "here", quiet=True)
    remote = [json.loads(line) for line in (tmp_path / "remote" / "records.jsonl").open()]
    assert [(r["id"], r["status"], r["values"]) for r in remote] == [
        (r.id, r.status.value, dict(r.values)) for r in here.records
    ]
    assert local_ray.is_initialized()  # the remote driver left the shared cluster running


def test_ray_map_keeps_item_order_with_more_items_than_slots(local_ray):
    ex = RayExecutor(workers=2)
    assert list(ex.map(_square, range(23))) == [i * i for i in range(23)]
    ex.close()  # did not start the cluster, so leaves it running
    assert local_ray.is_initialized()


def test_a_failing_item_raises_its_own_error_on_ray(local_ray):
    ex = RayExecutor(workers=2)
    results = ex.map(_fail_on_three, range(6))
    with pytest.raises(UsageError, match="item 3 is broken"):
        list(results)


def test_make_executor_choices():
    assert isinstance(make_executor("inprocess"), InProcessExecutor)
    assert isinstance(make_executor("ray", address="127.0.0.1:1"), RayExecutor)
    with pytest.raises(UsageError, match="--executor ray"):
        make_executor("inprocess", address="127.0.0.1:6379")
    with pytest.raises(UsageError, match="at least 1"):
        RayExecutor(workers=0)
