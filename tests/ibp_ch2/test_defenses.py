"""LGS and DW as preprocessing, BPDA through DW, and weak versus strong adversaries."""

import torch
from torch import nn

from threatlang.backends.ibp.attack import LocationSearch
from threatlang.backends.ibp.defense_attacks import (
    Adversary,
    DefenseAttackConfig,
    clean_accuracy,
    defended_accuracy_under_attack,
)
from threatlang.backends.ibp.defenses import (
    Defended,
    DigitalWatermark,
    DWConfig,
    GradientMode,
    LGSConfig,
    LocalGradientSmoothing,
)
from threatlang.backends.ibp.defenses.dw import densest_mask, saliency
from threatlang.backends.ibp.patches import PatchThreat, square


def _linear(weight: torch.Tensor) -> nn.Module:
    lin = nn.Linear(weight.numel(), 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.stack([weight.flatten(), -weight.flatten()]))
    return nn.Sequential(nn.Flatten(), lin)


def test_lgs_leaves_flat_images_and_damps_a_sharp_patch():
    lgs = LocalGradientSmoothing(LGSConfig(window=2, threshold=0.2, smoothing=1.0))
    flat = torch.full((1, 1, 8, 8), 0.4)
    assert torch.allclose(lgs(flat), flat)
    x = torch.full((1, 1, 8, 8), 0.2)
    x[..., 2:4, 2:4] = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = lgs(x)
    assert out.min() >= 0 and out.max() <= 1
    assert out[..., 2:4, 2:4].sum() < 0.7 * x[..., 2:4, 2:4].sum()
    assert torch.allclose(out[..., 6:, :], x[..., 6:, :])  # far from the patch: untouched


def test_gradients_flow_through_lgs_smoothing():
    lgs = LocalGradientSmoothing(LGSConfig(window=2, threshold=0.0, smoothing=1.0))
    x = torch.rand(2, 1, 6, 6, requires_grad=True)
    lgs(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_dw_masks_the_most_salient_region():
    w = torch.zeros(8, 8)
    w[5:7, 1:3] = 5.0  # the classifier only looks at this block
    model = _linear(w)
    dw = DigitalWatermark(model, DWConfig(window=2, quantile=0.9))
    x = torch.rand(3, 1, 8, 8)
    out = dw(x)
    assert torch.all(out[..., 5:7, 1:3] == 0)
    assert int((out != x).sum()) <= 3 * 4  # one 2x2 region per image


def test_bpda_gradients_flow_through_dw():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 3))
    dw = DigitalWatermark(model, DWConfig(window=3))
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    exact = Defended(dw, model, GradientMode.EXACT)
    bpda = Defended(dw, model, GradientMode.BPDA)
    assert torch.equal(exact(x), bpda(x))  # the backward mode never changes predictions
    (g_exact,) = torch.autograd.grad(exact(x)[:, 0].sum(), x)
    (g_bpda,) = torch.autograd.grad(bpda(x)[:, 0].sum(), x)
    masked = densest_mask(saliency(model, x), dw.cfg).bool().expand_as(x)
    assert torch.all(g_exact[masked] == 0)  # masking blocks exact gradients there
    t = dw(x).detach().requires_grad_(True)
    (g_model,) = torch.autograd.grad(model(t)[:, 0].sum(), t)
    assert torch.allclose(g_bpda, g_model)  # identity backward: the model's gradient at DW(x)
    assert g_bpda[masked].abs().sum() > 0


def test_strong_adversary_is_never_weaker_on_lgs():
    torch.manual_seed(0)
    x = torch.rand(24, 1, 6, 6)
    y = (x[:, 0, :3].mean((1, 2)) > x[:, 0, 3:].mean((1, 2))).long()
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 2))
    opt = torch.optim.Adam(model.parameters(), 0.05)
    for _ in range(100):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    lgs = LocalGradientSmoothing(LGSConfig(window=2, threshold=0.3))
    threat = PatchThreat([square(2)])
    cfg = DefenseAttackConfig(steps=10, step_size=0.2)
    assert clean_accuracy(model, lgs, x, y) > 0.5
    for search in LocationSearch:
        weak = defended_accuracy_under_attack(model, lgs, x, y, threat, Adversary.WEAK, search, cfg)
        strong = defended_accuracy_under_attack(
            model, lgs, x, y, threat, Adversary.STRONG, search, cfg
        )
        assert strong.float().mean() <= weak.float().mean()
