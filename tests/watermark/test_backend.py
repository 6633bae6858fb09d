import json
import subprocess
import sys

import attrs
import pytest

import threatlang
from threatlang.api import plan
from threatlang.backends.watermark import BACKEND
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
    assert {"test_accuracy", "trigger_accuracy", "certified_trigger_accuracy"} <= set(summary)
    certified = summary["certified_trigger_accuracy"]
    assert set(certified) == {"0.02", "5"}
    assert certified["5"] is None  # 100 draws cannot reach ε/σ = 100: no bound, never a guess
    records = {r.id: r for r in result.records}
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
