"""The ibp backend's chapter-2 declaration: what it accepts, what it refuses, and one tiny run."""

from pathlib import Path

import threatlang
from threatlang.backends.ibp import BACKEND

SPECS = Path(__file__).resolve().parents[2] / "specs"

HEAD = """threatlang 1
spec t {
  model small_cnn
  data digits {
    test_limit 12
    train_limit 96
  }
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
        + "  attack pgd {\n    steps 5\n  }\n  certify ibp\n  evaluate shape_transfer\n}\n"
    )
    summary = threatlang.run(threatlang.parse(text), output=tmp_path, quiet=True).summary
    assert summary.metrics["soundness_violations"] == 0  # the attack broke no certified image
    assert summary.metrics["examples"] == 12
    assert set(summary.metrics["shape_transfer"]) == {"square", "line"}
    assert summary.metrics["certified_accuracy"] <= summary.metrics["clean_accuracy"]


def test_several_train_actions_compare_side_by_side(tmp_path):
    text = (
        HEAD
        + PATCH.replace("    shape line(4, horizontal)\n", "")
        + "  train random_patch(1) { epochs 1 }\n  train guided_patch(2) { epochs 1 }\n"
        + "  certify ibp\n}\n"
    )
    res = threatlang.run(threatlang.parse(text), output=tmp_path, quiet=True)
    table = res.summary.tables[0]
    assert [r[0] for r in table.rows] == ["random_patch(1)", "guided_patch(2)"]
    assert len(res.records) == 24
    assert {r.id.split("/")[0] for r in res.records} == {"1-random_patch(1)", "2-guided_patch(2)"}
    rows = res.summary.metrics["strategies"]
    assert list(rows) == ["random_patch(1)", "guided_patch(2)"]
    for row in rows.values():
        assert row["certified_accuracy"] <= row["clean_accuracy"]
        assert row["train_seconds"] > 0
