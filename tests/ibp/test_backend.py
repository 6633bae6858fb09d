"""The ibp backend end to end: capability checks, plan text, records, summary, resume and plot."""

from __future__ import annotations

import json

import attrs
import pytest
import torch
from torch import nn

import threatlang
from threatlang.backends.ibp import BACKEND
from threatlang.backends.ibp.metrics import IbpSummary, from_metrics
from threatlang.errors import SpecError

TINY = """threatlang 1
spec tiny {
  model mlp255 {
    width 0.25
  }
  data digits {
    train_limit 600
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
    epochs 4
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
    with pytest.raises(SpecError, match="mip"):
        threatlang.parse(TINY.replace("certify ibp", "certify mip"))
    opts = threatlang.parse(TINY.replace("certify ibp", "certify ibp {\n    chunky 3\n  }"))
    assert any("chunky" in p.reason for p in BACKEND.accepts(opts))
    two = TINY.replace("certify ibp", "attack ifgsm\n  certify ibp")
    assert any("one `attack`" in p.reason for p in BACKEND.accepts(threatlang.parse(two)))


def test_plan_is_complete() -> None:
    """Every default the run uses is resolved at compile time and printed."""
    text = BACKEND.compile(threatlang.parse(TINY)).describe()
    assert "train all_patch" in text and "certify ibp" in text and "attack pgd" in text
    assert "step 0.25 x value range" in text  # the attack's default step, resolved
    assert "lr halved every 1 epochs" in text  # §2.7.1's 10% of 4 epochs, rounded, at least 1
    assert "chunk 256, batch 64, patch_engine auto" in text
    plan = BACKEND.compile(threatlang.parse(TINY))
    attack = plan.program.attack
    assert (attack.step_size, attack.search, attack.random_start) == (0.25, "anywhere", True)


def test_run_certifies_records_and_resumes_with_the_first_runs_times(monkeypatch, tmp_path):
    from threatlang.progress import ProgressFactory

    seen = {}

    def track(self, items, total=None, description="", sizes=None):
        seen[description] = (total, 0)
        for i, item in enumerate(items):
            done = seen[description][1] + (1 if sizes is None else sizes[i])
            seen[description] = (total, done)
            yield item

    monkeypatch.setattr(ProgressFactory, "track", track)
    result = threatlang.run(threatlang.parse(TINY), output=tmp_path, quiet=True)
    # progress counts images (a work item is a group of 32) and epochs
    assert seen["certify ibp"] == (40, 40) and seen["train all_patch"] == (4, 4)
    m = result.summary.metrics
    assert m["examples"] == 40
    assert m["certified_accuracy"] > 0  # has teeth: the checks below compare real certificates
    assert m["certified_accuracy"] <= m["empirical_accuracy"] <= m["clean_accuracy"] <= 1
    assert m["clean_accuracy"] > 0.3  # above chance (10 classes)
    assert m["soundness_violations"] == 0
    assert isinstance(from_metrics(m), IbpSummary)  # the declared schema holds
    assert BACKEND.capabilities.summary is IbpSummary and BACKEND.capabilities.certifies
    lines = (tmp_path / "records.jsonl").read_text().splitlines()
    assert len(lines) == 40
    recs = [json.loads(line) for line in lines]
    assert any(r["status"] == "certified" for r in recs)
    for r in recs:
        v = r["values"]
        if r["status"] == "certified":
            assert v["margin_lower"] > 0 and v["clean_correct"] and not v["attack_success"]
        if r["status"] == "falsified" and v["clean_correct"]:
            assert r["counterexample"]["kind"] == "patch"
        if r["status"] == "unknown":
            assert r["reason"]
    assert all(p.exists() for p in result.summary.plots)
    titles = [t.title for t in result.summary.tables]
    assert "patch robustness" in titles[0] and titles[1].startswith("certificate training")
    recorded = json.loads((tmp_path / "timings.json").read_text())
    assert set(recorded) == {"train", "attack", "certify"}
    # resuming re-uses the checkpoint and the finished records; the stage times are the
    # first run's (not the checkpoint load's), and none of them vanishes
    again = threatlang.run(threatlang.parse(TINY), output=tmp_path, quiet=True, resume=True)
    m2 = again.summary.metrics
    assert m2["certified_accuracy"] == m["certified_accuracy"]
    for stage in ("train", "attack", "certify"):
        assert m2[f"{stage}_seconds"] == m[f"{stage}_seconds"] == round(recorded[stage], 3)
    assert again.summary.tables[1].rows == result.summary.tables[1].rows  # losses kept


def test_runs_leave_the_global_rng_alone_and_repeat(tmp_path) -> None:
    """Model init, batches and attack starts come from the run's own seeded streams."""
    text = TINY.replace("epochs 4", "epochs 1").replace("warmup 2", "warmup 1")
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = threatlang.run(threatlang.parse(text), output=tmp_path / "a", quiet=True)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(7)  # a different global state changes nothing
    b = threatlang.run(threatlang.parse(text), output=tmp_path / "b", quiet=True)
    assert [(r.id, r.status, r.values) for r in a.records] == [
        (r.id, r.status, r.values) for r in b.records
    ]


def test_unsupported_layer_gives_unknown_not_certified(tmp_path) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.SiLU(), nn.Linear(16, 10))
    text = TINY.split("  train all_patch")[0] + "  train standard {\n    epochs 1\n  }\n"
    text += "  certify ibp {\n    engine ours\n  }\n}\n"
    spec = threatlang.parse(text)
    result = threatlang.run(spec, model=model, output=tmp_path, quiet=True)
    m = result.summary.metrics
    assert m["certified_accuracy"] == 0
    assert m["unsupported"] == sum(r.status.value == "unknown" for r in result.records) > 0
    for r in result.records:
        assert r.status.value in ("unknown", "falsified")
        if r.status.value == "unknown":
            assert "product of two computed tensors" in r.reason.lower()


def _ball_spec(norm: str, radius: float, attack: str = "pgd") -> str:
    return f"""threatlang 1
spec ball {{
  model mlp255 {{
    width 0.25
  }}
  data digits {{
    train_limit 600
    test_limit 60
  }}
  threat {norm}_ball {{
    around input
    radius {radius}
  }}
  require label_unchanged
  train standard {{
    epochs 10
    lr 0.01
  }}
  attack {attack} {{
    steps 10
  }}
  certify crown
}}
"""


@pytest.mark.parametrize("norm, small, large", [("linf", 0.005, 0.2), ("l2", 0.05, 3.0)])
def test_input_ball_certificates_and_attacks(tmp_path, norm: str, small: float, large: float):
    """A model well above chance: at a small radius most correct images certify and the PGD
    attack breaks none of them; at a large radius PGD breaks most and nothing certifies."""
    spec = threatlang.parse(_ball_spec(norm, small))
    result = threatlang.run(spec, output=tmp_path / "small", quiet=True)
    m = result.summary.metrics
    assert m["clean_accuracy"] > 0.6
    assert 0.5 * m["clean_accuracy"] < m["certified_accuracy"]
    assert m["certified_accuracy"] <= m["empirical_accuracy"] <= m["clean_accuracy"]
    assert m["soundness_violations"] == 0
    title = result.summary.tables[0].title
    assert f"{norm} input-ball robustness" in title and "patch" not in title
    assert result.summary.tables[1].title.startswith("standard training")
    plan = BACKEND.compile(spec).describe()
    assert "over all placements" not in plan and f"{norm} ball" in plan
    big = threatlang.run(
        threatlang.parse(_ball_spec(norm, large)), output=tmp_path / "big", quiet=True
    )
    mb = big.summary.metrics
    assert mb["clean_accuracy"] == m["clean_accuracy"]  # same seed, same model
    assert mb["certified_accuracy"] == 0
    assert mb["empirical_accuracy"] < 0.5 * mb["clean_accuracy"]
    counters = [r.counterexample for r in big.records if r.values["clean_correct"]]
    counters = [c for c in counters if c is not None]
    assert counters and all(c["kind"] == "input ball" for c in counters)
    assert all(c["distance"] <= large * (1 + 1e-6) for c in counters)


def test_ball_counterexamples_fool_the_model_inside_the_ball(tmp_path) -> None:
    """Each recorded l-inf counterexample is in the clipped ball and misclassified."""
    spec = threatlang.parse(_ball_spec("linf", 0.15, "ifgsm"))
    result = threatlang.run(spec, output=tmp_path, quiet=True)
    from threatlang.data import load_dataset

    test = load_dataset(spec.data, 0).test
    model = _trained_copy(tmp_path, spec)
    checked = 0
    for r in result.records:
        c = r.counterexample
        if c is None or c.get("kind") != "input ball":
            continue
        i = int(r.id.split("-")[1])
        x0 = torch.as_tensor(test.x[i])
        adv = torch.tensor(c["input"])
        assert float((adv - x0).abs().max()) <= 0.15 + 1e-6
        assert 0.0 <= float(adv.min()) and float(adv.max()) <= 1.0
        assert int(model(adv[None]).argmax(1)) != int(test.y[i])
        checked += 1
    assert checked > 0


def _trained_copy(out, spec) -> nn.Module:
    from threatlang.backends.ibp.models import mlp255

    model = mlp255((1, 8, 8), 10, 0.25)
    model.load_state_dict(torch.load(out / "model.pt", weights_only=True))
    return model.eval()


def test_ball_attack_rejects_patch_only_settings() -> None:
    text = _ball_spec("linf", 0.01).replace(
        "    steps 10\n", "    steps 10\n    locations corners\n"
    )
    reasons = [u.reason for u in BACKEND.accepts(threatlang.parse(text))]
    assert any("placements" in r for r in reasons)


def test_data_outside_the_input_range_is_refused_for_balls(tmp_path) -> None:
    from threatlang.errors import UsageError

    spec = threatlang.parse(_ball_spec("linf", 0.01))
    x = torch.rand(20, 1, 8, 8) * 2 - 1  # in [-1, 1]: the default range [0, 1] would clip
    data = {"train": (x, torch.arange(20) % 10), "test": (x, torch.arange(20) % 10)}
    with pytest.raises(UsageError, match=r"input range \[0.0, 1.0\]"):
        threatlang.run(spec, data=data, output=tmp_path, quiet=True)
    assert attrs.has(IbpSummary)
