"""Soundness: parameter-space PGD inside radius ε never drives the smoothed trigger accuracy
below the certified lower bound, beyond the stated failure probability.

Each check can fail by chance only if the certificate's order statistic (probability ≤ 1 − c)
or the attacked model's upper confidence bound (≤ 1 − c) is wrong: ≤ 2(1 − c) per radius.
"""

import numpy as np
import pytest
import torch

from threatlang.backends.watermark.attacks import ParameterPGDConfig, pgd_at_radius
from threatlang.backends.watermark.certify import certify_watermark
from threatlang.backends.watermark.config import NoiseStrategy, TriggerKind
from threatlang.backends.watermark.embed import EmbedConfig, embed_watermark
from threatlang.backends.watermark.param_noise import detached_params
from threatlang.backends.watermark.triggers import TriggerConfig, make_trigger_set

from .conftest import tiny_mlp

SIGMA, CONFIDENCE, SAMPLES = 0.1, 0.999, 600
RADII = (0.05, 0.1, 0.15, 0.2)


def _watermarked(digits, seed: int, model_fn=tiny_mlp, epochs: int = 12):
    x, y = digits
    trig = make_trigger_set(TriggerConfig(TriggerKind.TEXT, count=32, seed=seed), x[:500], y[:500])
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    owner, trigger, test = (
        (t(x[:500]), t(y[:500])),
        (t(trig.x), t(trig.y)),
        (t(x[-300:]), t(y[-300:])),
    )
    model = model_fn(seed)
    config = EmbedConfig(epochs=epochs, warmup_epochs=2, lr=0.05, sigma=SIGMA, replay=4, samples=4,
                         strategy=NoiseStrategy.VMAP)  # fmt: skip
    embed_watermark(model, owner, trigger, config, torch.Generator().manual_seed(seed))
    return model.eval(), trigger, test


def _check(model, trigger, test, seed: int, steps: int = 30, restarts: int = 1):
    cert = certify_watermark(
        model, detached_params(model), *trigger, SIGMA, SAMPLES, RADII, CONFIDENCE,
        torch.Generator().manual_seed(seed), strategy=NoiseStrategy.VMAP,
    )  # fmt: skip
    pgd = ParameterPGDConfig(steps=steps, noise_samples=8, sigma=SIGMA,
                             strategy=NoiseStrategy.VMAP, restarts=restarts)  # fmt: skip
    rows = []
    for row in cert.radii:
        res = pgd_at_radius(model, trigger, test, row.radius, SIGMA, SAMPLES, CONFIDENCE, pgd, 64,
                            torch.Generator().manual_seed(seed + 100))  # fmt: skip
        assert res.distance <= row.radius * (1 + 1e-5)
        rows.append((row, res))
    return cert, rows


def test_pgd_inside_the_ball_never_beats_the_certificate(digits):
    model, trigger, test = _watermarked(digits, seed=0)
    cert, rows = _check(model, trigger, test, seed=0)
    assert any(r.lower_bound is not None and r.lower_bound > 0 for r, _ in rows)  # non-vacuous
    # the attack is real: at the largest radius it hurts the plain (black-box) model or test set
    _, last = rows[-1]
    assert last.trigger_plain < 1.0 or last.worst_test_accuracy < 0.9
    for row, res in rows:
        if row.lower_bound is not None:
            assert res.smoothed_upper >= row.lower_bound, (row, res)


@pytest.mark.slow
def test_soundness_over_many_models_stays_within_the_failure_probability(digits):
    violations = checks = 0
    for seed in range(6):
        model, trigger, test = _watermarked(digits, seed=seed, epochs=15)
        _, rows = _check(model, trigger, test, seed=seed, steps=60, restarts=2)
        for row, res in rows:
            if row.lower_bound is not None:
                checks += 1
                violations += res.smoothed_upper < row.lower_bound
    # each check fails by chance with probability <= 2(1 - c) = 0.002
    assert checks > 0 and violations <= 1
