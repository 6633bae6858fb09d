"""The Python embedding examples run as documented."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]


def test_parse_and_inspect_example():
    proc = subprocess.run(
        [sys.executable, "examples/parse_and_inspect.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "confidence 0.99999" in proc.stdout
    assert "inline.threat:4:20 radii must be >= 0" in proc.stdout


@pytest.mark.slow
def test_embed_patch_example(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples/embed_patch.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    assert "certified" in proc.stdout and (tmp_path / "runs/embedded_patch/records.jsonl").exists()


@pytest.mark.slow
def test_certify_your_model_example(tmp_path):
    """The user's own module certifies; the one with a Python branch on its input gets no
    certificate, and the reason says why."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples/certify_your_model.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    mine, routed = proc.stdout.split("the routed model", 1)
    certified = float(mine.split("certified ", 1)[1].split()[0])
    assert certified > 0.5 and "soundness violations 0" in mine
    assert "back in eval mode" in mine
    assert "refused:" in routed or "certified 0.000" in routed
    assert "branch" in routed or "data-dependent" in routed
