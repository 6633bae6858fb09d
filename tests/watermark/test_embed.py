import numpy as np
import torch

from threatlang.backends.watermark.config import NoiseStrategy, TriggerStep
from threatlang.backends.watermark.embed import EmbedConfig, embed_watermark, noise_levels
from threatlang.backends.watermark.param_noise import accuracy_under_noise, detached_params
from threatlang.backends.watermark.triggers import TriggerConfig, make_trigger_set

from .conftest import tiny_mlp


def test_noise_levels_ramp_to_the_maximum():
    levels = noise_levels(EmbedConfig(sigma=1.0, replay=4, samples=3))
    assert torch.allclose(levels, torch.tensor([0.25] * 3 + [0.5] * 3 + [0.75] * 3 + [1.0] * 3))


def _setup(digits):
    x, y = digits
    trig = make_trigger_set(TriggerConfig(count=32), x[:400], y[:400])
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return (t(x[:400]), t(y[:400])), (t(trig.x), t(trig.y)), (t(x[-300:]), t(y[-300:]))


def test_noisy_embedding_makes_the_watermark_survive_parameter_noise(digits):
    owner, trigger, test = _setup(digits)
    sigma, runs = 0.15, {}
    for noise in (False, True):
        model = tiny_mlp(0)
        config = EmbedConfig(epochs=12, warmup_epochs=2, sigma=sigma, replay=4, samples=4,
                             noise=noise, strategy=NoiseStrategy.VMAP)  # fmt: skip
        logs = embed_watermark(
            model, owner, trigger, config, torch.Generator().manual_seed(0), test
        )
        assert len(logs) == 12 and logs[-1].test_accuracy > 0.8
        assert all(log.trigger_loss == 0 for log in logs[:2])  # warm-up: no noisy steps
        assert (logs[-1].trigger_loss > 0) == noise
        noisy = accuracy_under_noise(model.eval(), detached_params(model), *trigger, sigma, 200,
                                     torch.Generator().manual_seed(1))  # fmt: skip
        runs[noise] = float(noisy.median())
    assert runs[True] > runs[False] + 0.2


def test_per_level_steps_and_loop_strategy_train_too(digits):
    owner, trigger, test = _setup(digits)
    model = tiny_mlp(1)
    before = detached_params(model)
    config = EmbedConfig(epochs=2, warmup_epochs=0, sigma=0.1, replay=2, samples=2,
                         step=TriggerStep.PER_LEVEL, strategy=NoiseStrategy.LOOP)  # fmt: skip
    logs = embed_watermark(model, owner, trigger, config, torch.Generator().manual_seed(0))
    assert logs[-1].trigger_loss > 0 and logs[-1].test_accuracy is None
    assert any(not torch.equal(before[k], p) for k, p in model.named_parameters())


def test_regular_steps_see_the_trigger_set_only_when_asked(digits):
    """Algorithm 2 trains the regular steps on X alone: with only warm-up epochs (no noisy
    trigger steps yet) the trigger labels are not learnt; mixing the trigger set into the
    regular steps (the reference code's variant, and the baseline watermark) learns them."""
    from threatlang.backends.watermark.config import RegularData
    from threatlang.backends.watermark.param_noise import plain_accuracy

    owner, trigger, _ = _setup(digits)
    accuracy = {}
    for regular in RegularData:
        model = tiny_mlp(0)
        config = EmbedConfig(epochs=15, warmup_epochs=15, sigma=0.1, regular_data=regular,
                             strategy=NoiseStrategy.VMAP)  # fmt: skip
        embed_watermark(model, owner, trigger, config, torch.Generator().manual_seed(0))
        accuracy[regular] = plain_accuracy(model.eval(), detached_params(model), *trigger)
    assert accuracy[RegularData.TRAIN] < 0.2
    assert accuracy[RegularData.TRAIN_AND_TRIGGER] > 0.8
    assert EmbedConfig(noise=False).mixes_trigger and not EmbedConfig().mixes_trigger
