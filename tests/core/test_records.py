"""The append-only record log: resume, torn last lines, duplicates, JSON shape."""

from __future__ import annotations

import json

import pytest

from threatlang.records import RecordLog, read_records
from threatlang.report import Record, Status, Summary, Table


def test_append_and_resume(tmp_path):
    path = tmp_path / "records.jsonl"
    log = RecordLog(path)
    log.append(Record("a", Status.CERTIFIED, {"margin": 0.5}, 0.1))
    log.append(Record("b", "unknown", reason="solver time-out"))
    with path.open("a") as fh:
        fh.write('{"id": "c", "sta')  # a kill in the middle of a write
    resumed = RecordLog(path, resume=True)
    assert resumed.done_ids() == {"a", "b"}
    assert [r.id for r in read_records(path)] == ["a", "b"]  # the torn line is gone
    with pytest.raises(ValueError, match="already"):
        resumed.append(Record("a", Status.FALSIFIED))
    fresh = RecordLog(path)  # without resume a run starts over
    assert len(fresh) == 0 and path.read_text() == ""


def test_unknown_needs_a_reason_and_values_become_json():
    import numpy as np

    with pytest.raises(ValueError, match="needs a reason"):
        Record("x", Status.UNKNOWN)
    r = Record("x", Status.CERTIFIED, {"bound": np.float32(1.5), "box": np.arange(3)})
    assert json.loads(json.dumps(r.to_json()))["values"] == {"bound": 1.5, "box": [0, 1, 2]}
    assert Record.from_json(r.to_json()) == r


def test_summary_json_keeps_stable_keys():
    s = Summary(
        {"clean_accuracy": 0.9, "certified_accuracy": float("nan")}, (Table("t", ["a"], [[1]]),)
    )
    data = s.to_json("spec", "ibp")
    assert data["clean_accuracy"] == 0.9 and data["certified_accuracy"] is None
    assert data["tables"][0]["rows"] == [[1]]


def test_run_items_skips_done_and_keeps_order(tmp_path):
    from rich.console import Console

    from threatlang.backends.base import RunContext
    from threatlang.progress import ProgressFactory
    from threatlang.runloop import run_items

    calls = []

    def work(n):
        calls.append(n)
        return Record(f"item{n}", Status.CERTIFIED, {"n": n})

    items = [(f"item{n}", n) for n in range(5)]
    log = RecordLog(tmp_path / "r.jsonl")
    log.append(Record("item2", Status.FALSIFIED))
    ctx = RunContext(
        out_dir=tmp_path,
        records=log,
        progress=ProgressFactory(Console(quiet=True), quiet=True),
        console=Console(quiet=True),
    )
    out = run_items(ctx, items, work, "test")
    assert calls == [0, 1, 3, 4]
    assert [r.id for r in out] == [f"item{n}" for n in range(5)]
    assert out[2].status is Status.FALSIFIED


def test_run_items_groups_return_one_record_per_id_and_resume_partially(tmp_path):
    from rich.console import Console

    from threatlang.backends.base import RunContext
    from threatlang.progress import ProgressFactory
    from threatlang.runloop import run_items

    calls = []

    def work(group):
        calls.append(tuple(group))
        return [Record(f"item{n}", Status.CERTIFIED, {"n": n}) for n in group]

    items = [(tuple(f"item{n}" for n in g), g) for g in ([0, 1, 2], [3, 4], [5])]
    log = RecordLog(tmp_path / "r.jsonl")
    log.append(Record("item3", Status.FALSIFIED))  # a group cut short by a kill
    log.append(Record("item5", Status.CERTIFIED, {"n": 5}))
    ctx = RunContext(
        out_dir=tmp_path,
        records=log,
        progress=ProgressFactory(Console(quiet=True), quiet=True),
        console=Console(quiet=True),
    )
    out = run_items(ctx, items, work, "test")
    assert calls == [(0, 1, 2), (3, 4)]  # the finished group is skipped, the cut one reruns
    assert [r.id for r in out] == [f"item{n}" for n in range(6)]
    assert out[3].status is Status.FALSIFIED  # what was recorded before is kept, not duplicated
    assert len(log) == 6

    def wrong(group):
        return [Record("other", Status.CERTIFIED)]

    import pytest

    with pytest.raises(ValueError, match="returned records"):
        run_items(ctx, [(("x",), [9])], wrong, "test")
