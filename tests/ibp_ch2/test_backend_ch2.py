"""The ibp backend's chapter-2 declaration: what it accepts, what it refuses, and one tiny run."""

from pathlib import Path

import threatlang
from threatlang.backends.ibp import BACKEND

SPECS = Path(__file__).resolve().parents[2] / "specs"

HEAD = """threatlang 1
spec t {
  model small_cnn
  data digits { test_limit 12 }
"""
PATCH = """  threat patch {
    shape square(2)
    shape line(4, horizontal)
  }
  require label_unchanged
"""


def _reasons(text: str) -> list[str]:
    spec = threatlang.parse(text)
    return [u.reason for u in BACKEND.accepts(spec)]


def test_chapter2_specs_are_accepted():
    for path in sorted(SPECS.glob("ch2_*.threat")):
        assert BACKEND.accepts(threatlang.load(path)) == (), path.name


def test_defences_cannot_be_certified_and_bpda_needs_one():
    text = HEAD + "  preprocess dw { window 2 }\n" + PATCH + "  train standard\n  certify ibp\n}\n"
    assert any("cannot bound LGS/DW" in r for r in _reasons(text))
    text = HEAD + PATCH + "  train standard\n  attack bpda\n}\n"
    assert any("attacks through a `preprocess`" in r for r in _reasons(text))
    text = HEAD + "  preprocess lgs { lambda 2 }\n" + PATCH + "  train standard\n  attack bpda\n}\n"
    assert any("unknown option 'lambda'" in r for r in _reasons(text))


def test_guided_training_needs_a_single_shape():
    assert any("one shape" in r for r in _reasons(HEAD + PATCH + "  train guided_patch(4)\n}\n"))
    ok = HEAD + PATCH + "  train guided_patch(4) {\n    patch 2\n  }\n}\n"
    assert _reasons(ok) == []


def test_pooled_spec_runs_end_to_end(tmp_path):
    text = (
        HEAD
        + PATCH
        + "  train pooled_patch {\n    epochs 1\n    pool 2\n    patch 2\n  }\n"
        + "  certify ibp\n  evaluate shape_transfer\n}\n"
    )
    summary = threatlang.run(threatlang.parse(text), output=tmp_path, quiet=True).summary
    assert summary.metrics["examples"] == 12
    assert "shape_transfer_line" in summary.metrics
    assert summary.metrics["certified_accuracy"] <= summary.metrics["clean_accuracy"]
