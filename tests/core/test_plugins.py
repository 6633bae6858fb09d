"""A backend that lives under tests/ becomes a plugin through its entry point, with no core
edit: `check` learns its choices, options and data source; `run` runs a spec through it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import threatlang
from threatlang.errors import SpecError

PLUGIN_DIR = Path(__file__).parents[1] / "plugins"

SPEC = """threatlang 1
spec blobs {
  model blob_linear
  data blobs { per_class 15 }
  threat linf_ball { radius 0.2 }
  require label_unchanged
  train least_squares
  certify corner_check { margin 0.05 }
}
"""


@pytest.fixture
def blobs(install_plugin):
    install_plugin(PLUGIN_DIR, {"blobs": "blob_backend:BACKEND"}, dist="blob_plugin")


def test_without_the_plugin_its_names_are_unknown():
    with pytest.raises(SpecError) as info:
        threatlang.parse(SPEC)
    text = str(info.value)
    assert "unknown certification method 'corner_check'" in text
    assert "unknown data source 'blobs'" in text


def test_the_plugin_extends_check_and_runs(blobs, tmp_path):
    spec = threatlang.parse(SPEC)
    plan = threatlang.plan(spec)
    assert "margin > 0.05" in plan.describe() and "15 blobs/class" in plan.describe()
    result = threatlang.run(spec, output=tmp_path / "run", quiet=True)
    assert result.backend == "blobs" and len(result.records) == 30
    metrics = result.summary.metrics
    assert metrics["certified_accuracy"] > 0.5  # well-separated blobs: most certify
    assert metrics["soundness_violations"] == 0
    assert metrics["certified_accuracy"] <= metrics["clean_accuracy"]


def test_plugin_options_are_checked_with_positions(blobs):
    bad = SPEC.replace("margin 0.05", "margn 0.05").replace("per_class 15", "per_class x")
    from threatlang.compile import capable_backend
    from threatlang.errors import CapabilityError

    with pytest.raises(CapabilityError) as info:
        capable_backend(threatlang.parse(bad))
    messages = [(d.span.line, d.message) for d in info.value.diagnostics]
    assert any(line == 8 and "unknown option 'margn'" in m for line, m in messages)
    assert any(line == 4 and "per_class" in m for line, m in messages)


def test_plugin_is_found_by_a_fresh_process(tmp_path):
    """The entry point works for the CLI of another process, as an installed plugin would."""
    sys.path.insert(0, str(PLUGIN_DIR.parent))
    try:
        from conftest import register_plugin
    finally:
        sys.path.pop(0)
    register_plugin(tmp_path / "site", "blob_plugin", {"blobs": "blob_backend:BACKEND"})
    (tmp_path / "blobs.threat").write_text(SPEC)
    env = {"PYTHONPATH": f"{tmp_path / 'site'}:{PLUGIN_DIR}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "threatlang", "check", str(tmp_path / "blobs.threat")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


def test_core_does_not_name_the_plugin():
    core = Path(threatlang.__file__).parent
    backends = core.parent / "backends"
    for root in (core, backends):
        for path in root.rglob("*.py"):
            assert "corner_check" not in path.read_text(), path


def test_a_broken_plugin_is_skipped_with_a_warning(install_plugin, tmp_path):
    (tmp_path / "broken_backend.py").write_text("raise ImportError('needs libfoo')\n")
    install_plugin(tmp_path, {"broken": "broken_backend:BACKEND"}, dist="broken_plugin")
    from threatlang.backends.registry import backends

    with pytest.warns(RuntimeWarning, match="'broken'.*skipped.*libfoo"):
        names = [b.name for b in backends()]
    assert "broken" not in names and "ibp" in names


def test_backends_command_lists_the_declarations(blobs, capsys):
    from threatlang.cli import main

    assert main(["backends"]) == 0
    out = capsys.readouterr().out
    assert "blobs (priority 5, ready)" in out
    assert "certify corner_check" in out and "train least_squares" in out
    assert "ibp (priority 10" in out and "train random_patch(k)" in out
