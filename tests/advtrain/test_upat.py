import copy

import torch
import torch.nn.functional as F

from threatlang.backends.advtrain import pyramid as pyr
from threatlang.backends.advtrain.counting import count_passes
from threatlang.backends.advtrain.schedule import RadiusSchedule
from threatlang.backends.advtrain.upat import UPAT, UPATConfig

from .helpers import batch, tiny_vit

CFG = pyr.PyramidConfig(scales=(8, 4, 1), multipliers=(4.0, 2.0, 1.0))


def _upat(radius=0.5, tau=0.01, clean_loss=True) -> UPAT:
    cfg = UPATConfig(CFG, RadiusSchedule.constant(radius), tau, 1.0, clean_loss)
    return UPAT(cfg, (1, 8, 8))


def test_one_forward_and_one_backward_on_the_doubled_batch_per_step():
    model, (x, y), method = tiny_vit(), batch(6), _upat()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with count_passes(model) as c:
        for step in range(3):
            method.step(model, x, y, opt, epoch=0.0)
            assert (c.forwards, c.backwards) == (step + 1, step + 1)
    assert c.forward_rows == c.backward_rows == 3 * 2 * len(x)


def test_without_clean_loss_only_the_perturbed_batch_is_forwarded():
    model, (x, y), method = tiny_vit(), batch(6), _upat(clean_loss=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with count_passes(model) as c:
        method.step(model, x, y, opt, epoch=0.0)
    assert (c.forwards, c.backwards, c.backward_rows) == (1, 1, len(x))


def test_pattern_moves_by_a_sign_step_of_the_gradient_from_the_training_backward():
    model, (x, y), method = tiny_vit(), batch(6), _upat(radius=10.0, tau=0.01)
    method.pattern = [torch.full_like(p, 0.003) for p in method.pattern]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(3):
        before = [p.clone() for p in method.pattern]
        # the gradient of objective (6.4) at the parameters the step starts from
        ref_model = copy.deepcopy(model)
        levels = [p.clone().requires_grad_(True) for p in before]
        x_adv = pyr.perturb(x, pyr.compose(levels, CFG, 10.0, 8, 8), CFG)
        loss = F.cross_entropy(ref_model(x), y) + F.cross_entropy(ref_model(x_adv), y)
        expected = torch.autograd.grad(loss, levels)
        method.step(model, x, y, opt, epoch=0.0)
        for old, new, g in zip(before, method.pattern, expected, strict=True):
            change = new - old
            assert torch.all(torch.isclose(change.abs(), torch.tensor(0.01)) | (change == 0))
            torch.testing.assert_close(change, 0.01 * torch.sign(g))
            assert (change != 0).any()


def test_pattern_is_universal_and_stays_in_the_ball():
    model, (x, y), method = tiny_vit(), batch(6), _upat(radius=0.02, tau=0.015)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):
        method.step(model, x, y, opt, epoch=0.0)
    for p, s in zip(method.pattern, CFG.scales, strict=True):
        assert p.shape == (1, *pyr.level_shape(s, (1, 8, 8)))
        assert p.abs().max() <= 0.02 + 1e-7
    assert method.delta(0.0).shape == (1, 1, 8, 8)


def test_the_model_update_uses_the_combined_clean_and_adversarial_loss():
    model, (x, y), method = tiny_vit(), batch(6), _upat(radius=0.05)
    method.pattern = [torch.full_like(p, 0.05) for p in method.pattern]
    ref = copy.deepcopy(model)
    x_adv = pyr.perturb(x, pyr.compose(method.pattern, CFG, 0.05, 8, 8), CFG)
    loss = F.cross_entropy(ref(x), y) + F.cross_entropy(ref(x_adv), y)
    loss.backward()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    method.step(model, x, y, opt, epoch=0.0)
    for p, q in zip(model.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), (q - 0.1 * q.grad).detach())
