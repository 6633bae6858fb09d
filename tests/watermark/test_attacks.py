import copy

import numpy as np
import torch
import torch.nn.functional as F

from threatlang.backends.watermark.attacks import (
    ParameterPGDConfig,
    RemovalConfig,
    SmoothedProbe,
    parameter_pgd,
    removal_attack,
)
from threatlang.backends.watermark.config import NoiseStrategy, RemovalKind
from threatlang.backends.watermark.param_noise import detached_params, l2_distance

from .conftest import tiny_mlp


def _arrays(digits, lo, hi):
    x, y = digits
    return torch.from_numpy(np.ascontiguousarray(x[lo:hi])), torch.from_numpy(y[lo:hi])


def test_removal_attacks_work_on_a_copy_and_log_every_epoch(digits):
    model = tiny_mlp().eval()
    before = copy.deepcopy(model.state_dict())
    attacker, trigger, test = (
        _arrays(digits, 0, 300),
        _arrays(digits, 300, 332),
        _arrays(digits, 400, 600),
    )
    probe = SmoothedProbe(sigma=0.05, samples=10, strategy=NoiseStrategy.VMAP)
    for kind in RemovalKind:
        for reg in (0.0, 0.5):
            config = RemovalConfig(kind=kind, lr=1e-2, epochs=2, regularization=reg)
            history = removal_attack(model, attacker, trigger, test, config, probe,
                                     torch.Generator().manual_seed(0))  # fmt: skip
            assert [e.epoch for e in history] == [0, 1, 2]
            assert history[0].l2_distance == 0.0
            assert 0 < history[1].l2_distance < history[2].l2_distance * 1.5
            assert all(0 <= e.trigger_smoothed <= 1 and 0 <= e.test_accuracy <= 1 for e in history)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_finetuning_improves_a_random_model_and_distillation_follows_the_teacher(digits):
    teacher = tiny_mlp(0).eval()
    attacker, test = _arrays(digits, 0, 600), _arrays(digits, 1200, 1500)
    probe = SmoothedProbe(sigma=0.01, samples=5, strategy=NoiseStrategy.VMAP)
    hist = removal_attack(teacher, attacker, test, test, RemovalConfig(lr=1e-2, epochs=3), probe,
                          torch.Generator().manual_seed(0))  # fmt: skip
    assert hist[-1].test_accuracy > hist[0].test_accuracy + 0.3


def test_parameter_pgd_stays_in_the_ball_and_raises_the_loss(digits):
    model = tiny_mlp(0).eval()
    params = detached_params(model)
    x, y = _arrays(digits, 0, 64)
    y = model(x).argmax(-1).detach()
    for eps in (0.05, 0.5):
        for samples, restarts in ((0, 1), (4, 1), (0, 3)):
            cfg = ParameterPGDConfig(steps=10, noise_samples=samples, sigma=0.05,
                                     strategy=NoiseStrategy.VMAP, restarts=restarts)  # fmt: skip
            moved = parameter_pgd(model, params, x, y, eps, cfg, torch.Generator().manual_seed(0))
            assert l2_distance(moved, params) <= eps * (1 + 1e-5)
            from torch.func import functional_call

            loss = F.cross_entropy(functional_call(model, moved, (x,)), y).detach()
            assert float(loss) > float(F.cross_entropy(model(x), y).detach())
    assert all(torch.equal(params[k], p) for k, p in model.named_parameters())
