import pytest
import torch
import torch.nn.functional as F

from threatlang.backends.advtrain import pyramid as pyr
from threatlang.backends.advtrain.counting import count_passes
from threatlang.backends.advtrain.pat import PAT, PATConfig, pyramid_attack
from threatlang.backends.advtrain.schedule import RadiusSchedule

from .helpers import batch, linear, tiny_vit

CFG = pyr.PyramidConfig(scales=(4, 1), multipliers=(2.0, 1.0))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_pat_k_makes_k_extra_passes_then_one_on_the_doubled_batch(k):
    model, (x, y) = tiny_vit(), batch(5)
    method = PAT(PATConfig(CFG, RadiusSchedule.constant(0.03), k), torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with count_passes(model) as c:
        method.step(model, x, y, opt, epoch=0.0)
    assert (c.forwards, c.backwards) == (k + 1, k + 1)
    assert c.backward_rows == k * len(x) + 2 * len(x)  # k + 2 example-passes per update


def test_attack_respects_the_pyramid_and_raises_the_loss():
    model, (x, y) = linear(), batch(8)
    g = torch.Generator().manual_seed(1)
    adv = pyramid_attack(model, x, y, CFG, 0.05, steps=5, step_size=0.01, generator=g)
    assert adv.min() >= 0 and adv.max() <= 1
    assert (adv - x).abs().max() <= CFG.max_linf(0.05) + 1e-6
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)


def test_attack_leaves_model_gradients_alone():
    model, (x, y) = linear(), batch(4)
    pyramid_attack(model, x, y, CFG, 0.05, 2, 0.02, torch.Generator().manual_seed(0))
    assert all(p.grad is None for p in model.parameters())
