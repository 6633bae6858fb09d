"""The smoothing backend on the core's run scaffolding (issue 14): complete plans, one RNG
policy (explicit generators on the training device, the global RNG untouched), checkpoints
whose training seconds survive a resume, a typed summary with the soundness counter, and
non-finite model outputs that are never certified."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import threatlang
from threatlang.api import plan
from threatlang.backends.smoothing.classifier_model import smoothed_cnn, train_noisy_classifier
from threatlang.backends.smoothing.config import DetectorTraining, NoisyTraining
from threatlang.backends.smoothing.detection.models import TinyDetector
from threatlang.backends.smoothing.detection.scenes import make_scenes
from threatlang.backends.smoothing.detection.training import train_detector
from threatlang.backends.smoothing.regression_run import _outside
from threatlang.backends.smoothing.summary import SmoothingSummary
from threatlang.report import Record, Status
from threatlang.schema import summary_problems

from .test_backend import REGRESSION, _spec


def test_plans_resolve_every_default(tmp_path):
    """No `x or default` left for run time: noise, headline, step size and counts are in the
    plan, and `describe` shows them."""
    regression = plan(_spec(tmp_path, text=REGRESSION))
    assert regression.training == NoisyTraining(epochs=1, lr=0.003, batch_size=64, noise=0.25)
    detection = plan(_spec(tmp_path, samples=250))
    assert detection.attack_step == pytest.approx(2.5 * 0.36 / detection.attack.steps)
    assert detection.headline == (detection.sorts[0], detection.bins[0])
    assert detection.test_count == detection.spec.data.test_limit
    assert f"steps of {detection.attack_step:g}" in detection.describe()


def _weights(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def test_training_draws_only_from_its_generator_and_leaves_the_global_rng_alone():
    x = np.random.default_rng(0).random((24, 1, 8, 8), dtype=np.float32)
    y = np.arange(24) % 3
    training = NoisyTraining(epochs=1, lr=0.01, batch_size=8, noise=0.25)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = smoothed_cnn((1, 8, 8), 3)
        state = torch.random.get_rng_state()
        train_noisy_classifier(model, x, y, training, torch.Generator().manual_seed(5))
        assert torch.equal(torch.random.get_rng_state(), state)
        runs.append(_weights(model))
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    torch.manual_seed(0)
    other = smoothed_cnn((1, 8, 8), 3)
    train_noisy_classifier(other, x, y, training, torch.Generator().manual_seed(6))
    assert not all(torch.equal(a, b) for a, b in zip(runs[0], _weights(other), strict=True))


def test_detector_training_uses_the_generator_device_and_no_global_rng():
    scenes = make_scenes(24, seed=0)
    training = DetectorTraining(epochs=1, batch_size=8, lr=3e-3, noise_max=0.5, denoiser_epochs=1)
    torch.manual_seed(0)
    model = TinyDetector()
    state = torch.random.get_rng_state()
    gen = torch.Generator().manual_seed(0)
    before = gen.get_state()
    train_detector(model, scenes, training, gen)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not torch.equal(gen.get_state(), before)  # shuffling and noise came from it
    assert all(p.device == gen.device for p in model.parameters())


def test_a_resumed_run_loads_the_checkpoint_and_keeps_the_train_seconds(tmp_path):
    spec = _spec(tmp_path, text=REGRESSION)
    out = tmp_path / "run"
    first = threatlang.run(spec, output=out, quiet=True)
    seconds = first.summary.metrics["train_seconds"]
    assert seconds > 0 and (out / "classifier.pt").exists()
    stamp = (out / "classifier.pt").stat().st_mtime_ns
    records = out / "records.jsonl"
    records.write_text(records.read_text().splitlines(keepends=True)[0])
    second = threatlang.run(spec, output=out, quiet=True, resume=True)
    assert (out / "classifier.pt").stat().st_mtime_ns == stamp  # loaded, not retrained
    assert second.summary.metrics["train_seconds"] == seconds
    assert json.loads((out / "timings.json").read_text())["train"] == seconds
    drop = ("train_seconds", "certify_seconds")
    assert [r.values for r in second.records] == [r.values for r in first.records]
    assert {k: v for k, v in second.summary.metrics.items() if k not in drop} == {
        k: v for k, v in first.summary.metrics.items() if k not in drop
    }


def test_summary_is_typed_and_carries_the_soundness_counter(tmp_path):
    result = threatlang.run(_spec(tmp_path, text=REGRESSION), output=tmp_path / "r", quiet=True)
    metrics = result.summary.metrics
    assert summary_problems(SmoothingSummary, metrics) == []
    assert metrics["mode"] == "regression" and metrics["soundness_violations"] == 0


def test_a_prediction_outside_its_own_interval_counts_as_a_violation():
    inside = {"prediction": [0.5, 0.2], "lower": [0.4, 0.1], "upper": [0.6, 0.3]}
    outside = {**inside, "mean_prediction": [0.9], "mean_lower": [0.1], "mean_upper": [0.8]}
    assert not _outside(Record("a", Status.CERTIFIED, inside))
    assert _outside(Record("b", Status.CERTIFIED, outside))


class _NaNHead(torch.nn.Module):
    def forward(self, x):
        out = torch.zeros(x.shape[0], 10)
        out[:, 3] = float("nan")
        return out


def test_non_finite_outputs_are_never_certified(tmp_path):
    result = threatlang.run(
        _spec(tmp_path, text=REGRESSION.replace("softmax", "logits")),
        model=_NaNHead(),
        output=tmp_path / "r",
        quiet=True,
    )
    assert {r.status for r in result.records} == {Status.UNKNOWN}
    assert all("not all finite" in r.reason for r in result.records)
