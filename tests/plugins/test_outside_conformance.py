"""The shipped conformance suite runs on a backend that is not part of threatlang: a fresh
pytest process where the test plugin is installed only through its entry point, whose test
module registers the plugin's case and star-imports `threatlang.testing.suite`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN_DIR = Path(__file__).parent
TEST_MODULE = """import blob_case  # noqa: F401 - registers the plugin's case
from threatlang.testing.suite import *  # noqa: F403
"""


def _run_suite(tmp_path: Path, marks: str) -> subprocess.CompletedProcess:
    sys.path.insert(0, str(PLUGIN_DIR.parent))
    try:
        from conftest import register_plugin
    finally:
        sys.path.pop(0)
    register_plugin(tmp_path / "site", "blob_plugin", {"blobs": "blob_backend:BACKEND"})
    (tmp_path / "suite").mkdir()
    (tmp_path / "suite" / "test_blobs_conformance.py").write_text(TEST_MODULE)
    env = {**os.environ, "PYTHONPATH": f"{tmp_path / 'site'}:{PLUGIN_DIR}",
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            marks,
            "-rs",
            str(tmp_path / "suite"),
        ],  # fmt: skip
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_an_outside_backend_runs_the_shipped_suite(tmp_path):
    done = _run_suite(tmp_path, "not slow")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    # every fast check ran on the plugin's case: teeth skips (corner_check falsifies nothing)
    assert "9 passed, 1 skipped" in done.stdout, done.stdout[-2000:]
    assert "blobs: the backend falsified nothing" in done.stdout


@pytest.mark.slow
def test_an_outside_backend_passes_the_slow_checks(tmp_path):
    done = _run_suite(tmp_path, "slow")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout, done.stdout[-2000:]
