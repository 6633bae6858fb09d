"""The append-only record log: resume, torn last lines, duplicates, JSON shape."""

from __future__ import annotations

import json

import pytest

from threatlang.errors import UsageError
from threatlang.records import RecordLog, read_records
from threatlang.report import Record, Status, Summary, Table


def test_append_and_resume(tmp_path):
    path = tmp_path / "records.jsonl"
    log = RecordLog(path)
    log.append(Record("a", Status.CERTIFIED, {"margin": 0.5}, 0.1))
    log.append(Record("b", "unknown", reason="solver time-out"))
    whole = path.read_bytes()
    with path.open("a") as fh:
        fh.write('{"id": "c", "sta')  # a kill in the middle of a write
    assert [r.id for r in read_records(path)] == ["a", "b"]  # reading skips it, keeps the file
    assert path.read_bytes().endswith(b'"sta')
    resumed = RecordLog(path, resume=True)
    assert resumed.done_ids() == {"a", "b"}
    assert resumed.dropped == '{"id": "c", "sta'  # said, not silent
    assert path.read_bytes() == whole  # exactly the torn line is gone
    with pytest.raises(ValueError, match="already"):
        resumed.append(Record("a", Status.FALSIFIED))
    with pytest.raises(UsageError, match="already holds records"):
        RecordLog(path)  # a fresh log never truncates records it was not told to replace
    assert path.read_bytes() == whole
    fresh = RecordLog(path, overwrite=True)
    assert len(fresh) == 0 and path.read_text() == ""


LINES = [
    '{"id": "a", "status": "certified"}',
    '{"id": "b", "status": "falsified"}',
    '{"id": "c", "status": "certified"}',
]


@pytest.mark.parametrize(
    ("lines", "line_no", "message"),
    [
        ([LINES[0], '{"id": "x", "sta', *LINES[1:]], 2, "invalid JSON"),
        ([LINES[0], "[1, 2]", *LINES[1:]], 2, "a JSON list, not an object"),
        ([LINES[0], '{"status": "certified"}', LINES[1]], 2, "no 'id' field"),
        ([LINES[0], '{"id": "x", "status": "maybe"}', LINES[1]], 2, "not a valid record"),
        ([LINES[0], '{"id": "x", "status": "unknown"}', LINES[1]], 2, "needs a reason"),
        ([*LINES, LINES[1]], 4, "repeats line 2"),
        # a bad last line that ends with its newline was not torn by a kill: corruption
        ([*LINES, '{"id": "x", "sta'], 4, "invalid JSON"),
    ],
)
def test_invalid_line_anywhere_but_a_torn_end_is_an_error_naming_it(
    tmp_path, lines, line_no, message
):
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(lines) + "\n")
    before = path.read_bytes()
    for read in (lambda: RecordLog(path, resume=True), lambda: read_records(path)):
        with pytest.raises(UsageError, match=message) as info:
            read()
        assert f"{path}:{line_no}:" in str(info.value)
        assert path.read_bytes() == before  # nothing deleted to get past it


def test_torn_last_line_is_the_only_thing_dropped(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(LINES) + "\n" + LINES[0][:7])
    log = RecordLog(path, resume=True)
    assert [r.id for r in log.all()] == ["a", "b", "c"] and log.dropped == LINES[0][:7]
    assert path.read_text() == "\n".join(LINES) + "\n"
    # a whole record whose newline the kill cut off is kept, and the newline restored
    path.write_text("\n".join(LINES))
    log = RecordLog(path, resume=True)
    assert log.dropped is None and len(log) == 3
    log.append(Record("d", Status.CERTIFIED))
    assert [r.id for r in read_records(path)] == ["a", "b", "c", "d"]
    # blank lines are harmless, torn invalid UTF-8 at the end too
    path.write_bytes(("\n\n".join(LINES) + "\n").encode() + b'{"id": "\xff')
    log = RecordLog(path, resume=True)
    assert len(log) == 3 and log.dropped is not None


def test_append_notifies_the_run_directory(tmp_path):
    calls = []
    log = RecordLog(tmp_path / "r.jsonl", on_append=lambda: calls.append(len(calls)))
    log.append(Record("a", Status.CERTIFIED))
    log.append(Record("b", Status.CERTIFIED))
    assert calls == [0, 1]


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
