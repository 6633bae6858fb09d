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


def test_finetuning_improves_a_random_model(digits):
    teacher = tiny_mlp(0).eval()
    attacker, test = _arrays(digits, 0, 600), _arrays(digits, 1200, 1500)
    probe = SmoothedProbe(sigma=0.01, samples=5, strategy=NoiseStrategy.VMAP)
    hist = removal_attack(teacher, attacker, test, test, RemovalConfig(lr=1e-2, epochs=3), probe,
                          torch.Generator().manual_seed(0))  # fmt: skip
    assert hist[-1].test_accuracy > hist[0].test_accuracy + 0.3


def test_distillation_follows_its_teacher_where_finetuning_leaves_it(digits):
    """The teacher learnt shifted labels (y + 1 mod 10: wrong on almost every image). Measured
    against the teacher's own labels, distillation (hard and soft) keeps agreeing with it while
    its parameters really move; fine-tuning on the true labels, same budget, walks away."""
    teacher = tiny_mlp(0)
    x_own, y_own = _arrays(digits, 600, 1200)
    optimizer = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        F.cross_entropy(teacher(x_own), (y_own + 1) % 10).backward()
        optimizer.step()
    teacher.eval()
    x_check, y_check = _arrays(digits, 1200, 1500)
    with torch.no_grad():
        agree = (x_check, teacher(x_check).argmax(-1))  # "accuracy" here = agreement
    assert float((agree[1] == y_check).float().mean()) < 0.1  # the teacher is really wrong
    probe = SmoothedProbe(sigma=0.01, samples=5, strategy=NoiseStrategy.VMAP)
    final = {}
    for kind in RemovalKind:
        config = RemovalConfig(kind=kind, lr=1e-2, epochs=3)
        hist = removal_attack(teacher, _arrays(digits, 0, 600), agree, agree, config, probe,
                              torch.Generator().manual_seed(0))  # fmt: skip
        final[kind] = hist[-1]
    for kind in (RemovalKind.DISTILL_HARD, RemovalKind.DISTILL_SOFT):
        assert final[kind].l2_distance > 0.3, kind  # the student was trained, not left alone
        assert final[kind].test_accuracy >= 0.9, kind
    assert final[RemovalKind.FINETUNE].test_accuracy < 0.6


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
            assert l2_distance(moved, params) < eps  # the open ball the certificate covers
            from torch.func import functional_call

            loss = F.cross_entropy(functional_call(model, moved, (x,)), y).detach()
            assert float(loss) > float(F.cross_entropy(model(x), y).detach())
    assert all(torch.equal(params[k], p) for k, p in model.named_parameters())


def test_projection_lands_strictly_inside_the_open_ball():
    """float32 projection onto the closed ball gave ‖δ‖ = 0.300000016 at ε = 0.3: the moved
    parameters must be strictly inside, measured in float64 on the float32 values."""
    from threatlang.backends.watermark.attacks import _moved, _project

    gen = torch.Generator().manual_seed(0)
    params = detached_params(tiny_mlp(0, hidden=64))
    outside = 0
    for trial in range(40):
        eps = (0.3, 0.1, 1.0, 1e-3)[trial % 4]
        scale = float(torch.rand((), generator=gen)) * 10 + 1
        delta = {k: torch.randn(p.shape, generator=gen) * scale for k, p in params.items()}
        norm = sum(float(d.double().pow(2).sum()) for d in delta.values()) ** 0.5
        naive = {k: params[k] + d * (eps / norm) for k, d in delta.items()}  # closed ball
        outside += l2_distance(naive, params) >= eps
        moved = _moved(params, _project(delta, eps), eps)
        assert l2_distance(moved, params) < eps
    assert outside > 0  # the naive projection does leave the open ball on these draws
