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
