"""The smoothing backend as the language sees it: capabilities, options, plan, runs."""

import json
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
import torch

import threatlang
from threatlang.api import plan
from threatlang.backends.smoothing import BACKEND
from threatlang.ir.threats import Norm, Target

SPEC = """\
threatlang 1
spec det_small {
  model scene_detector
  data scenes { test_limit 3; train_count 200 }
  seed 0
  threat l2_ball { around input; radius 0.36 }
  require iou_at_least(0.5)
  train standard { epochs 2; lr 0.003; noise 0.35 }
  smooth median {
    sigma 0.25
    samples SAMPLES samples
    confidence 99.999%
    batch 250
    encoding { sort [location, objectness]; bin [label_location, none]; max_boxes 3 }
  }
  attack smoothing_aware { steps 2; noise_samples 2; images 1 }
}
"""


def _spec(tmp_path, samples=250, text=SPEC):
    path = tmp_path / "det.threat"
    path.write_text(text.replace("SAMPLES", str(samples)))
    return threatlang.load(path)


def test_importing_the_backend_pulls_in_no_torch():
    code = (
        "import sys, threatlang.backends.smoothing as s, threatlang.backends.smoothing.plan, threatlang.stats;"
        "print(s.BACKEND.name, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["smoothing", "False"]


def test_shipped_spec_is_accepted_and_planned():
    spec = threatlang.load("specs/detection_smoothing.threat")
    assert BACKEND.accepts(spec) == ()
    text = plan(spec).describe()
    for piece in (
        "2000 Gaussian samples",
        "confidence 0.99999",
        "headline location/label_location",
    ):
        assert piece in text


def test_what_the_backend_cannot_run_is_named(tmp_path):
    spec = _spec(tmp_path)
    assert BACKEND.accepts(spec) == ()
    ball = spec.threat
    cases = {
        "around input": attrs.evolve(spec, threat=attrs.evolve(ball, target=Target.PARAMETERS)),
        "l2 balls only": attrs.evolve(spec, threat=attrs.evolve(ball, norm=Norm.LINF)),
        "data scenes": attrs.evolve(spec, data=attrs.evolve(spec.data, source="digits")),
    }
    for message, bad in cases.items():
        reasons = " ".join(u.reason for u in BACKEND.accepts(bad))
        assert message in reasons, (message, reasons)


def test_unknown_option_is_reported(tmp_path):
    bad = SPEC.replace("noise_samples 2;", "noise_samples 2; bogus 3;")
    problems = BACKEND.accepts(_spec(tmp_path, text=bad))
    assert any("bogus" in u.reason for u in problems)


def test_too_few_samples_is_unknown_with_the_smallest_n_and_no_training(tmp_path):
    result = threatlang.run(_spec(tmp_path, samples=100), output=tmp_path / "run", quiet=True)
    m = result.summary.metrics
    assert m["status"] == "unknown" and m["min_samples"] == 148 and "certified_ap50" not in m
    assert {r.status.value for r in result.records} == {"unknown"} and len(result.records) == 3
    assert not (tmp_path / "run" / "detector.pt").exists()


@pytest.mark.slow
def test_end_to_end_run_writes_records_summary_and_plot(tmp_path):
    out = tmp_path / "run"
    result = threatlang.run(_spec(tmp_path), output=out, quiet=True)
    summary = json.loads((out / "summary.json").read_text())
    for key in ("ap50", "smoothed_ap50", "certified_ap50", "combinations", "attack_recall"):
        assert key in summary
    assert set(summary["combinations"]) == {
        "label_location/location",
        "label_location/objectness",
        "none/location",
        "none/objectness",
    }
    for combo in summary["combinations"].values():
        assert combo["certified_ap50"] <= combo["smoothed_ap50"] + 1e-9
    assert len(result.records) == 3 and (out / "certified_boxes.png").exists()
    rec = result.records[0].values
    assert len(rec["lower"]) == len(rec["upper"]) == len(rec["worst_case_iou"])


CLASSIFY = """\
threatlang 1
spec smoothed_digits {
  model smoothed_cnn
  data digits { test_limit 8 }
  seed 0
  threat l2_ball { around input; radii [0.1, 0.5] }
  require label_unchanged
  train standard { epochs 2; lr 0.003 }
  smooth classify { sigma 0.25; samples 200 samples; confidence 99.9%; n0 20 }
}
"""


def test_classify_spec_is_accepted_and_planned(tmp_path):
    spec = _spec(tmp_path, text=CLASSIFY)
    assert BACKEND.accepts(spec) == ()
    text = plan(spec).describe()
    assert "20 selection + 200 estimation samples" in text and "augmentation 0.25" in text
    bad = attrs.evolve(spec, require=threatlang.load("specs/detection_smoothing.threat").require)
    assert any("label_unchanged" in u.reason for u in BACKEND.accepts(bad))


@pytest.mark.slow
def test_classify_end_to_end(tmp_path):
    result = threatlang.run(_spec(tmp_path, text=CLASSIFY), output=tmp_path / "run", quiet=True)
    m = result.summary.metrics
    assert set(m["certified_accuracy_at"]) == {"0.1", "0.5"}
    assert m["certified_accuracy_at"]["0.5"] <= m["certified_accuracy_at"]["0.1"]
    assert m["certified_accuracy_at"]["0.1"] <= m["smoothed_accuracy"]
    assert len(result.records) == 8


REGRESSION = """\
threatlang 1
spec bounds_small {
  model smoothed_cnn
  data digits { test_limit 2; train_limit 300 }
  seed 0
  threat l2_ball { around input; radius 0.25 }
  require output_bounds
  train standard { epochs 1; lr 0.003 }
  smooth median { sigma 0.25; samples 100 samples; confidence 99%; outputs softmax }
}
"""


def test_regression_spec_is_planned_and_runs(tmp_path):
    spec = _spec(tmp_path, text=REGRESSION)
    assert BACKEND.accepts(spec) == ()
    text = plan(spec).describe()
    assert "percentile smoothing (p=0.5)" in text and "Corollary 3.0.1" in text
    result = threatlang.run(spec, output=tmp_path / "run", quiet=True)
    m = result.summary.metrics
    assert m["unknown"] == 0 and len(result.records) == 2
    for r in result.records:
        lo, hi = r.values["lower"], r.values["upper"]
        assert all(a <= p <= b for a, p, b in zip(lo, r.values["prediction"], hi, strict=True))
        assert all(
            0 <= a <= b <= 1
            for a, b in zip(r.values["mean_lower"], r.values["mean_upper"], strict=True)
        )
    assert 0 < m["percentile_mean_width"] <= 1 and 0 < m["mean_mean_width"] <= 1


def test_regression_with_too_few_samples_is_unknown(tmp_path):
    spec = _spec(tmp_path, text=REGRESSION.replace("radius 0.25", "radius 2.0"))
    result = threatlang.run(spec, output=tmp_path / "run", quiet=True)
    assert {r.status.value for r in result.records} == {"unknown"}
    assert "need n >=" in result.records[0].reason
    assert not (tmp_path / "run" / "classifier.pt").exists()  # nothing trained


class _FixedDetector(torch.nn.Module):
    """A black box in torchvision's output convention: one fixed box per image."""

    def forward(self, x):
        box = torch.tensor([[4.0, 4.0, 14.0, 14.0]])
        return [
            {"boxes": box, "labels": torch.tensor([1]), "scores": torch.tensor([0.9])}
            for _ in range(x.shape[0])
        ]


def test_user_detector_in_torchvision_convention_through_the_api(tmp_path):
    spec = _spec(tmp_path, samples=200)  # the API's model replaces the builtin (not trained)
    target = {"boxes": torch.tensor([[4.0, 4.0, 14.0, 14.0]]), "labels": torch.tensor([1])}
    data = [(torch.rand(3, 32, 32), target) for _ in range(2)]
    result = threatlang.run(
        spec, model=_FixedDetector(), data=data, output=tmp_path / "r", quiet=True
    )
    m = result.summary.metrics
    assert m["ap50"] == 1.0 and m["certified_ap50"] > 0.7  # certified at the thresholds <= 0.9
    assert {r.status.value for r in result.records} == {"certified"}
    assert "raw head" in m["attack_skipped"]
    assert not (tmp_path / "r" / "detector.pt").exists()


@pytest.mark.parametrize(
    "edits",
    [
        {"sigma 0.25": "sigma 0.1", "radius 0.25": "radius 1.0"},  # issue 15: "no n suffices"
        {  # issue 15: scipy was handed an n above 2^63
            "sigma 0.25": "sigma 0.1\n    percentile 0.1",
            "radius 0.25": "radius 0.8",
            "smooth median": "smooth percentile",
        },
    ],
)
def test_large_radius_over_sigma_runs_and_answers_unknown(tmp_path, edits):
    """A sample count exists (Phi(-eps/sigma) > 0) but no run can draw it: every example is
    `unknown` with the count in the reason, before any training or sampling."""
    text = Path("specs/output_bounds.threat").read_text()
    for old, new in edits.items():
        text = text.replace(old, new)
    spec = _spec(tmp_path, text=text)
    assert BACKEND.accepts(spec) == ()
    result = threatlang.run(spec, output=tmp_path / "run", quiet=True)
    assert {r.status.value for r in result.records} == {"unknown"}
    assert len(result.records) == 50
    assert "more than any run draws" in result.records[0].reason
    assert result.summary.metrics["min_samples"] > 10**18
    assert not (tmp_path / "run" / "classifier.pt").exists()
