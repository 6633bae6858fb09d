"""The `mip` backend end to end on a tiny auction spec: it accepts, compiles a complete plan,
runs, and its records obey sound-or-silent (a certificate only with a proven regret that no
attack beats); the summary follows its typed schema and agrees with the records and tables."""

import importlib.util
import json

import attrs
import pytest

import threatlang
from threatlang.backends.mip import BACKEND
from threatlang.backends.mip.summary import MipSummary

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
    grid 256
  }
  certify mip {
    solver SOLVER
    time_limit 20s
    threads 1
    support true
    support_time_limit 10
  }
}
"""


def _spec(payment: str = "free", solver: str = "highs", extra: str = ""):
    text = SPEC.replace("PAYMENT", payment).replace("SOLVER", solver)
    return threatlang.parse(text.replace("misreport_steps 5", f"misreport_steps 5{extra}"))


def test_accepts_and_rejects_with_reasons() -> None:
    spec = _spec()
    assert BACKEND.accepts(spec) == ()
    scip = _spec(solver="scip")
    has_scip = importlib.util.find_spec("pyscipopt") is not None
    assert any("scip" in u.reason for u in BACKEND.accepts(scip)) is not has_scip
    assert any("bogus" in u.reason for u in BACKEND.accepts(_spec(extra="\n    bogus 1")))
    wrong = threatlang.parse(SPEC.replace("PAYMENT", "fixed").replace("SOLVER", "highs"))
    assert any("payment" in u.reason for u in BACKEND.accepts(wrong))


def test_plan_resolves_every_default() -> None:
    plan = BACKEND.compile(_spec(extra="\n    distill true"))
    t = plan.train.options
    assert t.distill_weight == pytest.approx(1 / 400)  # the chapter's weight (§4.6.1)
    assert t.teacher_epochs == 2  # None resolved to the student's epochs
    assert plan.train.steps == 2 * 2  # 2 epochs x 256 fresh profiles / batch 128
    assert plan.certify.time_limit == 20.0 and plan.certify.gap == 1e-6
    assert plan.attack.step_size == 0.02 and plan.attack.options.grid == 256
    text = plan.describe()
    for piece in ("free payment", "certified at its best bound", "weight 0.0025", "256 grid bids"):
        assert piece in text
    bare = threatlang.parse(SPEC.replace("PAYMENT", "free").replace("SOLVER", "highs").replace(
        "  attack misreport {\n    steps 30\n    restarts 1\n    grid 256\n  }\n", ""
    ))  # fmt: skip
    assert BACKEND.compile(bare).attack.steps == 200  # no attack action: the default search


@pytest.mark.parametrize(("payment", "solver"), [("free", "highs"), ("fractional", "auto")])
def test_run_writes_sound_records(tmp_path, payment: str, solver: str) -> None:
    result = threatlang.run(_spec(payment, solver), output=tmp_path, quiet=True)
    summary = json.loads((tmp_path / "summary.json").read_text())
    metrics = {k: summary[k] for k in (f.name for f in attrs.fields(MipSummary))}
    assert MipSummary(**metrics) == MipSummary(**result.summary.metrics)  # the declared schema
    records = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == [r.id for r in result.records]
    support = [r for r in records if r["id"].startswith("support/")]
    records = [r for r in records if not r["id"].startswith("support/")]
    assert len(records) == 3 and [r["id"] for r in support] == ["support/agent0"]
    _check_support(support[0], records, summary)
    for rec in records:
        values = rec["values"]
        if values["certified_regret"] is not None:
            assert values["certified_regret"] >= 0 and "-0.0" not in json.dumps(values)
            assert values["attack_regret"] <= values["certified_regret"] + 1e-7
            assert values["empirical_regret"] <= values["attack_regret"]
            assert values["residual"] <= 1e-5
        if rec["status"] == "certified":
            assert values["certified_regret"] <= 0.05
        elif rec["status"] == "falsified":
            assert rec["counterexample"]["regret"] > 0.05
        else:
            assert rec["status"] == "unknown" and rec["reason"]
    statuses = [r["status"] for r in records]
    assert summary["soundness_violations"] == 0
    assert summary["certified_count"] == statuses.count("certified")
    assert summary["falsified_count"] == statuses.count("falsified")
    assert summary["unknown_count"] == statuses.count("unknown")
    table = summary["tables"][0]
    row = dict(zip(table["columns"], table["rows"][0], strict=True))
    assert int(row["falsified"]) == summary["falsified_count"]
    assert int(row["unknown"]) == summary["unknown_count"]  # falsified pairs are not unknown
    assert summary["menu_revenue"] >= 0 and summary["menu_regret"] >= 0
    assert summary["train_seconds"] > 0 and summary["evaluate_seconds"] > 0


def _check_support(rec: dict, records: list[dict], summary: dict) -> None:
    """The whole-support bound covers every per-profile regret proven or found, and the
    summary's regret_at_most is its verdict against the spec's 0.05."""
    values = rec["values"]
    bound, found = values["certified_max_regret"], values["max_regret_found"]
    assert summary["certified_max_regret"] == bound
    assert summary["max_regret_found"] == found
    if bound is not None:
        assert bound >= found - 1e-9
        for r in records:
            assert bound >= (r["values"]["certified_regret"] or 0.0) - 1e-6
            assert bound >= r["values"]["attack_regret"] - 1e-6
    expected = {"certified": "certified", "falsified": "falsified", "unknown": "unknown"}
    assert summary["regret_at_most"] == expected[rec["status"]]
    if rec["status"] == "certified":
        assert bound <= 0.05
    elif rec["status"] == "falsified":
        assert found > 0.05 and rec["counterexample"]["regret"] == found
    else:
        assert rec["reason"]


def test_resume_reuses_mechanism_records_and_stage_times(tmp_path) -> None:
    spec = _spec()
    first = threatlang.run(spec, output=tmp_path, quiet=True)
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    again = threatlang.run(spec, output=tmp_path, quiet=True, resume=True)
    assert (tmp_path / "records.jsonl").read_text().splitlines() == lines
    for key in ("certified_regret", "revenue", "menu_revenue", "train_seconds"):
        assert again.summary.metrics[key] == first.summary.metrics[key], key


def test_data_is_refused_in_one_sentence(tmp_path) -> None:
    import numpy as np

    from threatlang.errors import UsageError

    data = (np.zeros((4, 1, 2), np.float32), np.zeros(4, np.int64))
    with pytest.raises(UsageError, match="takes no data="):
        threatlang.run(_spec(), output=tmp_path, quiet=True, data=data)


def test_solver_auto_switches_are_said_on_the_console() -> None:
    from threatlang.backends.mip.run import report_switches
    from threatlang.report import Record

    said = []

    class Console:
        def print(self, text) -> None:
            said.append(text)

    class Ctx:
        console = Console()

    note = "Gurobi size-limited licence: 412 variables with bilinear terms (limit 200); switched"
    records = [
        Record("a", "certified", {"solver_switch": f"{note} to scip"}),
        Record("b", "certified", {"solver_switch": None}),
    ]
    report_switches(Ctx(), records)
    assert len(said) == 1 and "1 of 2" in said[0] and "switched to scip" in said[0]
    said.clear()
    report_switches(Ctx(), records[1:])
    assert said == []  # nothing switched: nothing said
