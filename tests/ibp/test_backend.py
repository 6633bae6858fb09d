"""The ibp backend end to end: capability checks, plan text, records, summary and plot."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import threatlang
from threatlang.backends.ibp import BACKEND

TINY = """threatlang 1
spec tiny {
  model mlp255 {
    width 0.1
  }
  data digits {
    train_limit 300
    test_limit 40
  }
  seed 0
  threat patch {
    shape square(2)
    locations all
    values [0, 1]
  }
  require label_unchanged
  train all_patch {
    epochs 3
    lr 0.003
    batch 50
    warmup 2
  }
  attack pgd {
    steps 5
    locations anywhere
  }
  certify ibp
}
"""


def test_accepts_quickstart_and_rejects_foreign_nodes() -> None:
    spec = threatlang.load("specs/quickstart.threat")
    assert BACKEND.accepts(spec) == ()
    bad = threatlang.parse(TINY.replace("certify ibp", "certify mip"))
    problems = BACKEND.accepts(bad)
    assert problems and "mip" in problems[0].reason
    opts = threatlang.parse(TINY.replace("certify ibp", "certify ibp {\n    chunky 3\n  }"))
    assert any("chunky" in p.reason for p in BACKEND.accepts(opts))


def test_plan_describes_steps() -> None:
    text = BACKEND.compile(threatlang.parse(TINY)).describe()
    assert "train all_patch" in text and "certify ibp" in text and "attack pgd" in text


def test_run_writes_records_summary_and_plot(tmp_path) -> None:
    result = threatlang.run(threatlang.parse(TINY), output=tmp_path, quiet=True)
    m = result.summary.metrics
    assert m["examples"] == 40
    assert 0 <= m["certified_accuracy"] <= m["empirical_accuracy"] <= m["clean_accuracy"] <= 1
    assert m["unsound"] == 0
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 40
    recs = [json.loads(line) for line in lines]
    for r in recs:
        v = r["values"]
        if r["status"] == "certified":
            assert v["margin_lower"] > 0 and v["clean_correct"] and not v["attack_success"]
        if r["status"] == "falsified" and v["clean_correct"]:
            assert r["counterexample"]["kind"] == "patch"
        if r["status"] == "unknown":
            assert r["reason"]
    assert all(p.exists() for p in result.summary.plots)
    # resuming re-uses the checkpoint and the finished records
    again = threatlang.run(threatlang.parse(TINY), output=tmp_path, quiet=True, resume=True)
    assert again.summary.metrics["certified_accuracy"] == m["certified_accuracy"]


def test_unsupported_layer_gives_unknown_not_certified(tmp_path) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 10))
    text = TINY.split("  train all_patch")[0] + "  train standard {\n    epochs 1\n  }\n"
    text += "  certify ibp\n}\n"
    spec = threatlang.parse(text)
    result = threatlang.run(spec, model=model, output=tmp_path, quiet=True)
    assert result.summary.metrics["certified_accuracy"] == 0
    for r in result.records:
        assert r.status.value in ("unknown", "falsified")
        if r.status.value == "unknown":
            assert "Tanh" in r.reason


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_input_ball_certificates(tmp_path, norm: str) -> None:
    text = f"""threatlang 1
spec ball {{
  model mlp255 {{
    width 0.1
  }}
  data digits {{
    train_limit 300
    test_limit 20
  }}
  threat {norm}_ball {{
    around input
    radius 0.001
  }}
  require label_unchanged
  train standard {{
    epochs 2
    lr 0.003
  }}
  certify crown
}}
"""
    spec = threatlang.parse(text)
    torch.manual_seed(0)
    result = threatlang.run(spec, output=tmp_path, quiet=True)
    m = result.summary.metrics
    assert 0 <= m["certified_accuracy"] <= m["clean_accuracy"]
