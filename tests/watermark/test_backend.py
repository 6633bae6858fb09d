import json
import subprocess
import sys

import attrs
import pytest
import torch

import threatlang
from threatlang.api import plan
from threatlang.backends.watermark import BACKEND
from threatlang.backends.watermark.summary import WatermarkSummary
from threatlang.errors import CapabilityError
from threatlang.ir.actions import Smooth
from threatlang.ir.threats import Norm, Target

SPEC = """\
threatlang 1
spec wm_small {
  model small_resnet
  data digits { train_limit 200; test_limit 100 }
  seed 0
  threat l2_ball { around parameters; radii [0.02, 5.0] }
  require accuracy_at_least(0.5)
  train watermark { epochs 2; lr 0.05; warmup 1; trigger_size 16; replay 2; noise_samples 2 }
  smooth median { sigma 0.05; samples 100 samples; confidence 0.99; probe_samples 4 }
  attack parameter_pgd { steps 2; noise_samples 2; test_examples 32 }
  attack finetune { steps 1; step_size 0.001 }
}
"""


def _spec(tmp_path, text=SPEC):
    path = tmp_path / "wm.threat"
    path.write_text(text)
    return threatlang.load(path)


def test_plan_describes_every_step(tmp_path):
    text = plan(_spec(tmp_path)).describe()
    for piece in (
        "16 text images",
        "Algorithm 2",
        "100 parameter-noise draws",
        "finetune lr=0.001",
    ):
        assert piece in text


def test_plan_resolves_every_default(tmp_path):
    p = plan(_spec(tmp_path))
    assert p.train_options.max_sigma == 0.05  # None resolved to the smoothing sigma
    assert p.pgd.step_sizes == pytest.approx((2.5 * 0.02 / 2, 2.5 * 5.0 / 2))  # 2.5·ε / steps
    assert p.removals[0].lr == 0.001 and p.chunk == 64
    assert p.train_options.regular_data.value == "train"  # Algorithm 2: X only
    text = p.describe()
    assert "regular steps on X only" in text and "buffers" in text


def test_what_the_backend_cannot_run_is_named_with_a_reason(tmp_path):
    spec = _spec(tmp_path)
    assert BACKEND.accepts(spec) == ()
    ball = spec.threat
    cases = {
        "around parameters": attrs.evolve(spec, threat=attrs.evolve(ball, target=Target.INPUT)),
        "l2 balls only": attrs.evolve(spec, threat=attrs.evolve(ball, norm=Norm.LINF)),
        "smooth median": attrs.evolve(
            spec, actions=tuple(a for a in spec.actions if not isinstance(a, Smooth))
        ),
    }
    for message, bad in cases.items():
        reasons = " ".join(u.reason for u in BACKEND.accepts(bad))
        assert message in reasons
    with pytest.raises(CapabilityError) as err:
        plan(_spec(tmp_path, SPEC.replace("trigger_size 16", "trigger_sizes 16")))
    assert "unknown option 'trigger_sizes'" in str(err.value)


def test_backend_package_imports_no_torch():
    code = "import sys, threatlang.backends.watermark as w; print(w.BACKEND.name, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["watermark", "False"]


def test_end_to_end_run_writes_records_summary_and_plot(tmp_path):
    result = threatlang.run(_spec(tmp_path), output=tmp_path / "run", quiet=True)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["backend"] == "watermark"
    fields = [f.name for f in attrs.fields(WatermarkSummary)]
    assert WatermarkSummary(**{k: summary[k] for k in fields}) == WatermarkSummary(
        **result.summary.metrics
    )  # the declared schema, on disk and in memory
    assert summary["soundness_violations"] == 0
    assert summary["buffers_held_fixed"] == 0 and "no buffers" in summary["certificate_scope"]
    assert summary["parameters"] > 0 and summary["embed_seconds"]["certified"] > 0
    certified = summary["certified_trigger_accuracy"]
    assert set(certified) == {"0.02", "5"}
    assert certified["5"] is None  # 100 draws cannot reach ε/σ = 100: no bound, never a guess
    records = {r.id: r for r in result.records}
    near = records["radius=0.02"]
    assert near.values["scope"] == summary["certificate_scope"]
    inside = near.values["strongest_inside_attack"]
    if inside is not None:  # every attack named there stayed strictly inside the radius
        assert inside["distance"] < 0.02
        if near.values["certified_trigger_accuracy"] is not None:
            assert inside["smoothed_upper"] >= near.values["certified_trigger_accuracy"]
    far = records["radius=5"]
    assert far.values["certified_trigger_accuracy"] is None
    if far.status.value == "falsified":  # PGD inside radius 5 wiped out the smoothed watermark
        assert far.counterexample["smoothed_upper"] < 0.5
    else:
        assert far.status.value == "unknown" and far.reason
    assert records["attack/finetune/lr=0.001/certified"].status.value == "unknown"
    assert (tmp_path / "run" / "trigger_accuracy_attacks.png").exists()
    assert "baseline" in summary and "parameter_pgd" in summary


@pytest.mark.slow
def test_the_shipped_spec_runs_and_certifies(tmp_path):
    result = threatlang.run("specs/watermark.threat", output=tmp_path / "run", quiet=True)
    certified = result.summary.metrics["certified_trigger_accuracy"]
    assert certified["0.1"] >= 0.5  # the certified watermark survives the smallest radius
    base = result.summary.metrics["baseline"]["certified_trigger_accuracy"]
    assert certified["0.1"] > base["0.1"]


def test_colour_images_and_resume(tmp_path):
    """3-channel data (CIFAR-like, here random) with unrelated triggers (the bundled digits);
    a resumed run reloads both checkpoints and appends nothing twice."""
    import numpy as np

    from threatlang.data import ArrayDataset, DataSplits

    rng = np.random.default_rng(0)
    split = lambda n: ArrayDataset(  # noqa: E731
        rng.uniform(size=(n, 3, 16, 16)).astype(np.float32), rng.integers(0, 10, n)
    )
    data = DataSplits("random", split(120), split(40), 10)
    text = SPEC.replace("trigger_size 16", 'trigger_size 16; trigger "unrelated"').replace(
        "attack parameter_pgd { steps 2; noise_samples 2; test_examples 32 }\n", ""
    )
    spec = _spec(tmp_path, text)
    first = threatlang.run(spec, data=data, output=tmp_path / "run", quiet=True)
    assert (tmp_path / "run" / "certified.pt").exists() and (
        tmp_path / "run" / "baseline.pt"
    ).exists()
    again = threatlang.run(spec, data=data, output=tmp_path / "run", quiet=True, resume=True)
    assert [r.id for r in again.records] == [r.id for r in first.records]
    assert again.summary.metrics["test_accuracy"] == first.summary.metrics["test_accuracy"]
    # the embedding times are the first run's, not the time to load the checkpoints
    assert again.summary.metrics["embed_seconds"] == first.summary.metrics["embed_seconds"]


def test_batchnorm_buffers_are_named_as_outside_the_certificate():
    from torch import nn

    from threatlang.backends.watermark.certify import certify_watermark
    from threatlang.backends.watermark.param_noise import detached_params

    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10)
    ).eval()
    x = torch.rand(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(-1).detach()
    cert = certify_watermark(model, detached_params(model), x, y, 0.01, 50, [0.001], 0.9,
                             torch.Generator().manual_seed(0))  # fmt: skip
    assert cert.buffers == 8  # running mean and variance of 4 channels
    assert cert.parameters == sum(p.numel() for p in model.parameters())
    assert "8 buffer values" in cert.scope and "BatchNorm" in cert.scope
