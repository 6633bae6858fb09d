"""The mip backend's certification runs through the shared run loop: a shrunken
`specs/auction_1x2.threat` gives the same records in-process and on a local 2-worker Ray cluster
(wall times aside), and a run cut short in-process resumes on Ray to the same records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import threatlang
from threatlang.executors import RayExecutor

SPEC = Path(__file__).parents[2] / "specs" / "auction_1x2.threat"
SHRINK = {
    "train_limit 8192": "train_limit 256",
    "test_limit 20": "test_limit 4",
    "eval_profiles 1000": "eval_profiles 64",
    "epochs 30": "epochs 2\n    misreport_steps 5",
    "batch 512": "batch 128",
    "steps 300": "steps 30",
    "restarts 2": "restarts 1",
    "time_limit 60s": "time_limit 30s",
}
TIMED = (
    "solve_time_mean",
    "solve_time_median",
    "solve_time_p95",
    "train_seconds",
    "evaluate_seconds",
)


@pytest.fixture(scope="module")
def spec_text(shrunk_spec) -> str:
    return shrunk_spec(SPEC, SHRINK)


def _records(out: Path) -> list[dict]:
    """Each record on disk except its wall time."""
    lines = (out / "records.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def _metrics(result) -> dict:
    return {k: v for k, v in result.summary.metrics.items() if k not in TIMED}


def test_in_process_and_ray_give_identical_records(spec_text, local_ray, tmp_path) -> None:
    spec = threatlang.parse(spec_text)
    here = threatlang.run(spec, output=tmp_path / "here", quiet=True)
    ray_executor = RayExecutor(workers=2)
    there = threatlang.run(spec, output=tmp_path / "ray", quiet=True, executor=ray_executor)
    assert ray_executor.used  # the solves went to the Ray workers, not this process
    records = _records(tmp_path / "here")
    assert [r["id"] for r in records] == [f"profile{k:04d}/agent0" for k in range(4)]
    assert any(r["values"]["certified_regret"] is not None for r in records)  # has teeth
    assert _records(tmp_path / "ray") == records
    assert _metrics(there) == _metrics(here)
    assert there.summary.metrics["soundness_violations"] == 0


def test_cut_short_in_process_resumes_on_ray(spec_text, local_ray, tmp_path) -> None:
    spec = threatlang.parse(spec_text)
    out = tmp_path / "cut"
    whole = threatlang.run(spec, output=out, quiet=True)
    expected = _records(out)
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:2]))
    resumed = threatlang.run(spec, output=out, quiet=True, resume=True, executor="ray", workers=2)
    assert (out / "records.jsonl").read_text().splitlines(keepends=True)[:2] == lines[:2]
    assert _records(out) == expected
    assert _metrics(resumed) == _metrics(whole)
