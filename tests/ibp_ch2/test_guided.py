"""Guided-patch training: the U-net's shape, its sampling law, and the guided certificate."""

import torch
from torch import nn

from threatlang.backends.ibp.guided import (
    GuidedConfig,
    GuidedPatchLoss,
    MarginUNet,
    location_probabilities,
    sample_locations,
)
from threatlang.backends.ibp.margins import patch_margins, worst_margins
from threatlang.backends.ibp.patches import LocationKind, Locations, PatchThreat, square
from threatlang.bounds.engine import BoundedNetwork


def _model(k: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, 1, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(48, 12),
        nn.ReLU(),
        nn.Linear(12, k),
    )


def test_unet_predicts_one_margin_per_label_and_placement():
    for m, n in [(8, 2), (7, 3), (28, 5)]:
        out = MarginUNet(1, 10, (n, n), width=4)(torch.rand(2, 1, m, m))
        assert out.shape == (2, 10, m - n + 1, m - n + 1)


def test_sampled_locations_follow_the_softmax_of_the_prediction():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(1, 3, 3, 3) * 1.5
    valid = torch.ones(9, dtype=torch.bool)
    valid[4] = False  # a placement outside the location set is never drawn
    probs = location_probabilities(pred, valid, temperature=0.7)
    expected = torch.softmax((-pred.flatten(2) / 0.7).masked_fill(~valid, -torch.inf), -1)
    assert torch.allclose(probs, expected)
    draws = 20000
    y = torch.zeros(draws // 2, dtype=torch.long)  # draws serve labels 1 and 2, never 0
    idx, labels = sample_locations(probs.expand(draws // 2, -1, -1), 2, gen, y)
    assert labels[0].tolist() == [1, 2]
    for j in range(2):
        freq = torch.bincount(idx[:, j], minlength=9).float() / idx.shape[0]
        assert freq[4] == 0
        assert torch.allclose(freq, probs[0, j + 1], atol=0.02)


def test_guided_draws_never_serve_the_images_own_label():
    """The own label's margin z_y - z_y is 0 at every placement: a draw there is wasted."""
    gen = torch.Generator().manual_seed(0)
    probs = torch.full((40, 10, 9), 1 / 9)
    y = torch.arange(40) % 10
    for k in (1, 3, 9, 10, 25):
        _, labels = sample_locations(probs, k, gen, y)
        assert labels.shape == (40, k)
        assert not bool((labels == y[:, None]).any())
        if k >= 9:  # every other label is served at least once
            assert all(len(set(row.tolist())) == 9 for row in labels)


def test_guided_margin_is_the_min_over_sampled_placements_and_above_all_patch():
    model = _model()
    threat = PatchThreat([square(2)])
    x, y = torch.rand(5, 1, 4, 4), torch.tensor([0, 1, 2, 3, 0])
    net = BoundedNetwork(model, x)
    loss = GuidedPatchLoss(threat, (1, 4, 4), 4, GuidedConfig(k=6, width=4))
    gen = torch.Generator().manual_seed(0)
    pred = loss.unet(x)
    idx, _ = sample_locations(location_probabilities(pred, loss.valid), 6, gen, y)
    m = patch_margins(net, x, y, loss.mask, loss.grid[idx], 0.0, 1.0, local=False).amin(1)
    all_patch = worst_margins(net, x, y, threat).margins
    assert bool((m >= all_patch - 1e-5).all())
    value = loss(net, x, y, 1.0, torch.Generator().manual_seed(0))
    assert torch.isfinite(value) and value.requires_grad
    value.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_unet_regresses_onto_sampled_margins():
    model = _model()
    x, y = torch.rand(16, 1, 4, 4), torch.randint(0, 4, (16,))
    net = BoundedNetwork(model, x)
    loss = GuidedPatchLoss(
        PatchThreat([square(2)]), (1, 4, 4), 4, GuidedConfig(k=8, width=4, lr=2e-2)
    )
    gen = torch.Generator().manual_seed(0)
    mses = []
    for _ in range(30):
        loss(net, x, y, 1.0, gen)  # classifier untouched: only the U-net learns
        mses.append(loss.last_mse)
    assert sum(mses[-5:]) < 0.5 * sum(mses[:5])


def test_restricted_locations_are_the_only_candidates():
    threat = PatchThreat([square(2)], Locations(LocationKind.CORNERS))
    loss = GuidedPatchLoss(threat, (1, 5, 5), 3, GuidedConfig(k=3, width=2))
    picked = {tuple(p) for p in loss.grid[loss.valid].tolist()}
    assert picked == {(0, 0), (0, 3), (3, 0), (3, 3)}
