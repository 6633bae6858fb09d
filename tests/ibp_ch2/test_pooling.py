"""Bound pooling: hulls contain their members, and pooled margins stay sound but looser."""

import pytest
import torch
from torch import nn

from threatlang.backends.ibp.margins import patch_margins
from threatlang.backends.ibp.patches import (
    LocationKind,
    Locations,
    PatchThreat,
    dense_box,
    mask_tensor,
    offsets,
    square,
)
from threatlang.backends.ibp.pooling import (
    PoolConfig,
    PooledPatchLoss,
    pool_box,
    pool_groups,
    pooled_margins,
)
from threatlang.bounds import propagate
from threatlang.bounds.engine import BoundedNetwork


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 3, 3, 1, 1),
        nn.ReLU(),
        nn.Conv2d(3, 4, 3, 1, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 7 * 7, 10),
        nn.ReLU(),
        nn.Linear(10, 5),
    )


def test_groups_are_adjacent_blocks():
    g = pool_groups((7, 7), 2, "cpu").reshape(7, 7)
    assert int(g.max()) + 1 == 16
    assert g[0, 0] == g[1, 1] == g[0, 1] and g[0, 2] != g[0, 1]
    assert g[6, 6] == 15 != g[5, 5] and g[4, 4] == g[5, 5] == g[4, 5]


def test_pooled_box_contains_every_member_box():
    x = torch.rand(3, 1, 7, 7)
    net = BoundedNetwork(_cnn(), x)
    mask = mask_tensor(square(2))
    offs = offsets(Locations(), (7, 7), (2, 2))
    box = propagate(net.body[:2], dense_box(x, mask, offs, 0.0, 1.0))
    groups = pool_groups((6, 6), 3, "cpu")
    pooled = pool_box(box, 3, groups)
    n_groups = int(groups.max()) + 1
    lo = box.lo.reshape(3, 36, -1)
    hi = box.hi.reshape(3, 36, -1)
    plo, phi = pooled.lo.reshape(3, n_groups, -1), pooled.hi.reshape(3, n_groups, -1)
    for loc in range(36):
        g = int(groups[loc])
        assert bool((plo[:, g] <= lo[:, loc] + 1e-6).all())
        assert bool((phi[:, g] >= hi[:, loc] - 1e-6).all())


@pytest.mark.parametrize("cfg", [PoolConfig.pool(2), PoolConfig.pool(4), PoolConfig.pool_2_2()])
def test_pooled_margins_lower_bound_every_member(cfg):
    x, y = torch.rand(4, 1, 7, 7), torch.tensor([0, 1, 2, 3])
    net = BoundedNetwork(_cnn(), x)
    mask = mask_tensor(square(2))
    offs = offsets(Locations(), (7, 7), (2, 2))
    exact = patch_margins(net, x, y, mask, offs, 0.0, 1.0, local=False)  # (B, 36, K)
    pooled = pooled_margins(net, x, y, mask, offs, 0.0, 1.0, cfg)
    final = _final_groups(cfg, (6, 6))
    for loc in range(36):
        assert bool((pooled[:, final[loc]] <= exact[:, loc] + 1e-5).all())


def _final_groups(cfg: PoolConfig, grid: tuple[int, int]) -> list[int]:
    """The final block of every placement, through each pooling stage."""
    ids = torch.arange(grid[0] * grid[1])
    for _, block in cfg.stages:
        g = pool_groups(grid, block, "cpu")
        ids = g[ids]
        grid = (-(-grid[0] // block), -(-grid[1] // block))
    return ids.tolist()


def test_more_pooling_is_looser():
    x, y = torch.rand(4, 1, 7, 7), torch.tensor([0, 1, 2, 3])
    net = BoundedNetwork(_cnn(), x)
    mask, offs = mask_tensor(square(2)), offsets(Locations(), (7, 7), (2, 2))
    worst = patch_margins(net, x, y, mask, offs, 0.0, 1.0, local=False).amin(1)
    p2 = pooled_margins(net, x, y, mask, offs, 0.0, 1.0, PoolConfig.pool(2)).amin(1)
    p22 = pooled_margins(net, x, y, mask, offs, 0.0, 1.0, PoolConfig.pool_2_2()).amin(1)
    assert bool((p2 <= worst + 1e-5).all()) and bool((p22 <= p2 + 1e-5).all())


def test_pooled_loss_trains_and_rejects_off_grid_locations():
    model = _cnn()
    x, y = torch.rand(4, 1, 7, 7), torch.tensor([0, 1, 2, 3])
    net = BoundedNetwork(model, x)
    loss = PooledPatchLoss(PatchThreat([square(2)]), PoolConfig.pool_2_2())
    value = loss(net, x, y, 0.5, torch.Generator())
    value.backward()
    assert all(p.grad is not None for p in model.parameters())
    bad = PatchThreat([square(2)], Locations(LocationKind.EXPLICIT, points=((0, 0), (1, 3))))
    with pytest.raises(ValueError, match="grid"):
        PooledPatchLoss(bad)(net, x, y, 1.0, torch.Generator())
    with pytest.raises(ValueError, match="layer 5"):
        PooledPatchLoss(PatchThreat([square(2)]), PoolConfig(((5, 2),)))(
            net, x, y, 1.0, torch.Generator()
        )


def _dense_pooled(net, x, y, mask, offs, cfg: PoolConfig):
    """The reference: every placement's full-image box through every layer, then the hulls."""
    from threatlang.backends.ibp.margins import elide
    from threatlang.backends.ibp.pooling import _after_relu, grid_shape

    grid, box, start = grid_shape(offs), dense_box(x, mask, offs, 0.0, 1.0), 0
    for layer, block in cfg.stages:
        end = _after_relu(net, layer)
        box = pool_box(
            propagate(net.body[start:end], box), x.shape[0], pool_groups(grid, block, "cpu")
        )
        grid, start = (-(-grid[0] // block), -(-grid[1] // block)), end
    return elide(net, propagate(net.body[start:], box), y, grid[0] * grid[1])


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(49, 12), nn.ReLU(), nn.Linear(12, 5))


@pytest.mark.parametrize("model", [_cnn, _mlp])
@pytest.mark.parametrize("cfg", [PoolConfig.pool(2), PoolConfig.pool(3), PoolConfig.pool_2_2()])
@pytest.mark.parametrize("stride", [1, 2])
def test_windowed_first_stage_equals_dense_hulls(model, cfg, stride):
    """Pooling computes the first layers on patch windows only: the same hulls as pooling
    every placement's full-image box (and the same gradients)."""
    if model is _mlp and cfg == PoolConfig.pool_2_2():
        pytest.skip("the MLP has one ReLU layer")
    x, y = torch.rand(3, 1, 7, 7, requires_grad=True), torch.tensor([0, 1, 2])
    net = BoundedNetwork(model(), x.detach())
    mask = mask_tensor(square(2))
    kind = LocationKind.ALL if stride == 1 else LocationKind.STRIDE
    offs = offsets(Locations(kind, stride=stride), (7, 7), (2, 2))
    fast = pooled_margins(net, x, y, mask, offs, 0.0, 1.0, cfg)
    ref = _dense_pooled(net, x, y, mask, offs, cfg)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)
    (g_fast,) = torch.autograd.grad(fast.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g_fast, g_ref, atol=1e-4, rtol=1e-4)
