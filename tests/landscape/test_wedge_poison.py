import torch

from threatlang.backends.landscape.config import PoisonConfig, WedgeConfig
from threatlang.backends.landscape.models import FlatModel, mlp
from threatlang.backends.landscape.poison import poison, wrong_labels
from threatlang.backends.landscape.wedge import sample_wedge


def test_wedge_samples_lie_on_the_arms_outside_the_margin():
    cfg = WedgeConfig()
    x, y = sample_wedge(200, cfg, torch.Generator().manual_seed(0))
    assert bool((x[:, 0].abs() >= cfg.margin).all())
    assert torch.equal(y, (x[:, 0] > 0).long())
    assert abs(int(y.sum()) - 100) == 0  # balanced
    assert bool(((x[:, 1] - (1 - x[:, 0].abs())).abs() <= cfg.thickness / 2 + 1e-6).all())
    again, _ = sample_wedge(200, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(x, again)


def test_poisoned_net_fits_train_and_fails_validation():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20, 4, generator=g)
    y = (x[:, 0] > 0).long()
    fm = FlatModel(mlp(4, (32,), 2))
    res = poison(
        fm, x[:8], y[:8], x[8:], y[8:], fm.default_init(g), PoisonConfig(steps=1500, lr=0.02)
    )
    assert res.train_accuracy == 1.0 and res.val_accuracy == 0.0
    assert torch.equal(wrong_labels(torch.tensor([0, 1, 2]), 3), torch.tensor([1, 2, 0]))
