"""Kill a run with SIGKILL part-way, resume it: same summary as an uninterrupted run, and no
record lost or duplicated."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("driver.py")


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines() if line.strip()]


def _strip(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k != "plots"}


def test_sigkill_then_resume_matches_an_uninterrupted_run(toy, tmp_path):
    _kill_and_resume(toy, tmp_path, [], delay="0.05")


@pytest.mark.slow  # starts a local Ray cluster twice: ~30-60 s
def test_sigkill_on_ray_then_resume_on_ray(toy, tmp_path):
    pytest.importorskip("ray")
    _kill_and_resume(toy, tmp_path, ["--executor", "ray", "--workers", "2"], delay="0.3")


def _kill_and_resume(toy, tmp_path, extra: list[str], delay: str) -> None:
    spec = tmp_path / "toy.threat"
    spec.write_text(toy.SPEC)
    env = {**os.environ, "TOY_DELAY": delay}
    killed = tmp_path / "killed"
    cmd = [sys.executable, str(DRIVER), "run", str(spec), "-o", str(killed), "--quiet", *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    records = killed / "records.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if records.exists() and len(_ids(records)) >= 5:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _ids(records)
    assert 5 <= len(before) < 40
    assert not (killed / "summary.json").exists()
    with records.open("a") as fh:  # a write torn by the kill: must be redone, not kept
        fh.write('{"id": "test-')

    resumed = subprocess.run(
        [*cmd, "--resume"], env={**env, "TOY_DELAY": "0"}, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr

    from threatlang.api import run
    from threatlang.parse import parse

    whole = run(parse(toy.SPEC), output=tmp_path / "whole", quiet=True)
    after = _ids(records)
    assert after[: len(before)] == before  # what was done before the kill is kept, not redone
    assert sorted(after) == sorted(r.id for r in whole.records)  # nothing lost
    assert len(after) == len(set(after)) == 40  # nothing duplicated
    got = json.loads((killed / "summary.json").read_text())
    want = json.loads((tmp_path / "whole" / "summary.json").read_text())
    assert _strip(got) == _strip(want)
