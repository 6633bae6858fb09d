"""The `mip` backend end to end on a tiny auction spec: accepts, compiles, runs, and its records
obey sound-or-silent (a certificate only with a proven regret; every PGD regret below it)."""

import importlib.util
import json

import pytest

import threatlang
from threatlang.backends.mip import BACKEND

SPEC = """threatlang 1
spec tiny_auction {
  model regretnet {
    hidden 8
    layers 1
    payment PAYMENT
  }
  data valuations {
    train_limit 256
    test_limit 3
    eval_profiles 64
  }
  threat bid_support {
    agents 1
    items 2
    valuations [0, 1]
    misreport all
  }
  require regret_at_most(0.05)
  train regretnet {
    epochs 2
    lr 0.003
    batch 128
    misreport_steps 5
  }
  attack misreport {
    steps 30
    restarts 1
  }
  certify mip {
    solver SOLVER
    time_limit 20s
    threads 1
  }
}
"""


def test_accepts_and_rejects_with_reasons() -> None:
    spec = threatlang.parse(SPEC.replace("PAYMENT", "free").replace("SOLVER", "highs"))
    assert BACKEND.accepts(spec) == ()
    plan = BACKEND.compile(spec)
    text = plan.describe()
    assert "free payment" in text and "time-outs are unknown" in text
    scip = threatlang.parse(SPEC.replace("PAYMENT", "free").replace("SOLVER", "scip"))
    has_scip = importlib.util.find_spec("pyscipopt") is not None
    assert any("scip" in u.reason for u in BACKEND.accepts(scip)) is not has_scip
    bad = threatlang.parse(
        SPEC.replace("PAYMENT", "free")
        .replace("SOLVER", "highs")
        .replace("lr 0.003", "lr 0.003\n    bogus 1")
    )
    assert BACKEND.accepts(bad)


@pytest.mark.parametrize(("payment", "solver"), [("free", "highs"), ("fractional", "auto")])
def test_run_writes_sound_records(tmp_path, payment: str, solver: str) -> None:
    spec = threatlang.parse(SPEC.replace("PAYMENT", payment).replace("SOLVER", solver))
    result = threatlang.run(spec, output=tmp_path, quiet=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    for key in (
        "revenue",
        "empirical_regret",
        "certified_regret",
        "solve_time_median",
        "solve_time_p95",
        "unknown_count",
    ):
        assert key in summary
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert len(records) == 3
    for rec in records:
        values = rec["values"]
        if rec["status"] == "certified":
            assert values["certified_regret"] is not None and values["certified_regret"] <= 0.05
        if values["certified_regret"] is not None:
            assert values["empirical_regret"] <= values["certified_regret"] + 1e-7
            assert values["residual"] <= 1e-5
        else:
            assert rec["status"] in ("unknown", "falsified") and rec["reason"]
    assert summary["pgd_above_certified"] == 0
    assert result is not None


def test_resume_reuses_mechanism_and_records(tmp_path) -> None:
    spec = threatlang.parse(SPEC.replace("PAYMENT", "free").replace("SOLVER", "highs"))
    first = threatlang.run(spec, output=tmp_path, quiet=True)
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    again = threatlang.run(spec, output=tmp_path, quiet=True, resume=True)
    assert (tmp_path / "records.jsonl").read_text().splitlines() == lines
    assert again.summary.metrics["certified_regret"] == first.summary.metrics["certified_regret"]
    assert again.summary.metrics["revenue"] == first.summary.metrics["revenue"]
