"""The ibp backend's per-image certification runs through the shared run loop: a shrunken
`specs/quickstart.threat` gives the same records in-process and on a local 2-worker Ray cluster
(wall times aside), and a run cut short in-process resumes on Ray to the same records."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import threatlang
from threatlang.executors import RayExecutor

SPEC = Path(__file__).parents[2] / "specs" / "quickstart.threat"
SHRINK = {
    "model mlp255": "model mlp255 {\n    width 0.25\n  }",
    "test_limit 300": "test_limit 20",
    "epochs 20": "epochs 3",
    "warmup 12": "warmup 1",
    "steps 20": "steps 5",
}


@pytest.fixture(scope="module")
def spec_text(shrunk_spec) -> str:
    return shrunk_spec(SPEC, SHRINK)


@pytest.fixture(scope="module")
def whole(spec_text, tmp_path_factory):
    """The shrunken spec run once in-process: (output dir, result)."""
    out = tmp_path_factory.mktemp("ibp_exec") / "here"
    return out, threatlang.run(threatlang.parse(spec_text), output=out, quiet=True)


def _records(out: Path) -> list[dict]:
    """Each record on disk except its wall time."""
    lines = (out / "records.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def _metrics(result) -> dict:
    return {k: v for k, v in result.summary.metrics.items() if not k.endswith("_seconds")}


def test_in_process_and_ray_give_identical_records(spec_text, whole, local_ray, tmp_path) -> None:
    spec = threatlang.parse(spec_text)
    here_dir, here = whole
    ray_executor = RayExecutor(workers=2)
    there = threatlang.run(spec, output=tmp_path / "ray", quiet=True, executor=ray_executor)
    assert ray_executor.used  # the certificates came from the Ray workers, not this process
    records = _records(here_dir)
    assert [r["id"] for r in records] == [f"test-{i}" for i in range(20)]
    assert any(r["status"] == "certified" for r in records)  # has teeth
    assert any("attack_success" in r["values"] for r in records)
    assert _records(tmp_path / "ray") == records
    assert _metrics(there) == _metrics(here)
    assert here.summary.metrics["unsound"] == 0


def test_cut_short_in_process_resumes_on_ray(spec_text, whole, local_ray, tmp_path) -> None:
    """Cut the in-process run's log short (its trained weights kept) and resume it on Ray."""
    spec = threatlang.parse(spec_text)
    here_dir, here = whole
    out = tmp_path / "cut"
    shutil.copytree(here_dir, out)
    expected = _records(out)
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:7]))
    resumed = threatlang.run(spec, output=out, quiet=True, resume=True, executor="ray", workers=2)
    assert (out / "records.jsonl").read_text().splitlines(keepends=True)[:7] == lines[:7]
    assert _records(out) == expected
    assert _metrics(resumed) == _metrics(here)
