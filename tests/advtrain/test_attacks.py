import pytest
import torch
from torch import nn

from threatlang.backends.advtrain.attacks import Norm, ifgsm, pgd, robust_accuracy

from .helpers import batch, linear


def _fit_linear(x, y) -> nn.Module:
    """A linear classifier fitted to the batch (so it starts out accurate)."""
    model = linear(shape=tuple(x.shape[1:]))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model


@pytest.mark.parametrize("norm", [Norm.LINF, Norm.L2])
def test_pgd_stays_in_the_ball_and_pixel_range(norm):
    model, (x, y) = linear(), batch(8)
    eps = 0.1 if norm is Norm.LINF else 1.0
    adv = pgd(model, x, y, eps, steps=5, norm=norm, generator=torch.Generator().manual_seed(0))
    d = (adv - x).flatten(1)
    size = d.abs().amax(1) if norm is Norm.LINF else d.norm(dim=1)
    assert size.max() <= eps + 1e-5
    assert adv.min() >= 0 and adv.max() <= 1


def test_ifgsm_stays_in_the_ball():
    model, (x, y) = linear(), batch(8)
    adv = ifgsm(model, x, y, 0.05, steps=4)
    assert (adv - x).abs().max() <= 0.05 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1


@pytest.mark.parametrize(
    "attack",
    [
        lambda m, x, y: ifgsm(m, x, y, 0.3, steps=10),
        lambda m, x, y: pgd(m, x, y, 0.3, steps=10, generator=torch.Generator().manual_seed(0)),
        lambda m, x, y: pgd(m, x, y, 4.0, steps=10, norm=Norm.L2),
    ],
)
def test_attacks_fool_a_fitted_linear_model_but_not_at_zero_radius(attack):
    x, y = batch(32)
    model = _fit_linear(x, y)
    clean, _ = robust_accuracy(model, x, y, lambda m, a, b: a)
    assert clean == 1.0
    robust, fooled = robust_accuracy(model, x, y, attack)
    assert robust < 0.5 and fooled.sum() > 16
    zero, _ = robust_accuracy(model, x, y, lambda m, a, b: pgd(m, a, b, 0.0, steps=3))
    assert zero == clean
