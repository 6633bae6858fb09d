"""The receptive-field engine computes exactly the dense boxes, in bounded chunks."""

from __future__ import annotations

import pytest
import torch

from threatlang.backends.ibp.margins import patch_margins, worst_margins
from threatlang.backends.ibp.models import ARCHITECTURES
from threatlang.backends.ibp.patches import (
    LocationKind,
    Locations,
    PatchThreat,
    mask_tensor,
    offsets,
    square,
)
from threatlang.bounds.engine import BoundedNetwork

from .helpers import conv_net

DIAMOND = ((False, True, False), (True, True, True), (False, True, False))


@pytest.mark.parametrize("mask", [square(1), square(2), square(5), DIAMOND, ((True, False, True),)])
@pytest.mark.parametrize("size", [12, 15])
def test_local_equals_dense(mask, size: int) -> None:
    model = conv_net(size)
    x = torch.rand(3, 1, size, size, generator=torch.Generator().manual_seed(size))
    y = model(x).argmax(1)
    net = BoundedNetwork(model, x)
    m = mask_tensor(mask)
    offs = offsets(Locations(), (size, size), tuple(m.shape))
    with torch.no_grad():
        local = patch_margins(net, x, y, m, offs, 0.0, 1.0, local=True)
        dense = patch_margins(net, x, y, m, offs, 0.0, 1.0, local=False)
    assert torch.allclose(local, dense, atol=1e-4)


@pytest.mark.parametrize("arch", ["mlp255", "small_cnn", "large_cnn"])
def test_local_equals_dense_builtin(arch: str) -> None:
    model = ARCHITECTURES[arch]((1, 16, 16), 10, 0.5).eval()
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.tensor([3, 7])
    net = BoundedNetwork(model, x)
    m = mask_tensor(square(3))
    offs = offsets(Locations(LocationKind.STRIDE, stride=2), (16, 16), (3, 3))
    with torch.no_grad():
        local = patch_margins(net, x, y, m, offs, 0.0, 1.0, local=True, scale=0.7)
        dense = patch_margins(net, x, y, m, offs, 0.0, 1.0, local=False, scale=0.7)
    assert torch.allclose(local, dense, atol=1e-4)


def test_per_image_placements_match_shared() -> None:
    model = conv_net(12)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(3, 1, 12, 12, generator=gen)
    y = model(x).argmax(1)
    net = BoundedNetwork(model, x)
    m = mask_tensor(square(2))
    per_image = torch.randint(0, 11, (3, 5, 2), generator=gen)
    with torch.no_grad():
        got = patch_margins(net, x, y, m, per_image, 0.0, 1.0, local=True)
        for i in range(3):
            ref = patch_margins(
                net, x[i : i + 1], y[i : i + 1], m, per_image[i], 0.0, 1.0, local=False
            )
            assert torch.allclose(got[i], ref[0], atol=1e-4)


def test_chunking_does_not_change_worst_case() -> None:
    model = conv_net(12)
    x = torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(2))
    y = model(x).argmax(1)
    net = BoundedNetwork(model, x)
    threat = PatchThreat((square(2), DIAMOND))
    with torch.no_grad():
        small = worst_margins(net, x, y, threat, chunk=7)
        large = worst_margins(net, x, y, threat, chunk=10_000)
    assert torch.allclose(small.margins, large.margins, atol=1e-5)
    # the recorded worst placement attains the worst margin
    worst, cls = small.runner_up(y)
    for i in range(4):
        s = int(small.shape_index[i, cls[i]])
        loc = small.location[i, cls[i]][None]
        m = patch_margins(
            net, x[i : i + 1], y[i : i + 1], mask_tensor(threat.masks[s]), loc, 0.0, 1.0
        )
        assert torch.isclose(m[0, 0, cls[i]], worst[i], atol=1e-5)


def test_residual_network_densifies_correctly() -> None:
    """A residual block ends the local prefix; the windows are pasted back into full maps."""
    from .helpers import every_layer_net

    model = every_layer_net(2)
    x = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(4))
    y = model(x).argmax(1)
    net = BoundedNetwork(model, x)
    m = mask_tensor(square(2))
    offs = offsets(Locations(), (8, 8), (2, 2))
    with torch.no_grad():
        local = patch_margins(net, x, y, m, offs, 0.0, 1.0, local=True)
        dense = patch_margins(net, x, y, m, offs, 0.0, 1.0, local=False)
    assert torch.allclose(local, dense, atol=1e-4)


def test_patch_bounds_below_sampled_patched_margins() -> None:
    """Every placement's margin bound lies below the margins of sampled patched images."""
    from threatlang.backends.ibp.patches import apply_patch

    model = conv_net(12, seed=3)
    gen = torch.Generator().manual_seed(5)
    x = torch.rand(2, 1, 12, 12, generator=gen)
    y = model(x).argmax(1)
    m = mask_tensor(DIAMOND)
    offs = offsets(Locations(), (12, 12), tuple(m.shape))
    with torch.no_grad():
        bound = patch_margins(BoundedNetwork(model, x), x, y, m, offs, 0.0, 1.0, local=True)
        for trial in range(40):
            if trial < 8:
                content = torch.full((2, offs.shape[0], 1, 3, 3), float(trial % 2))
            else:
                content = torch.rand((2, offs.shape[0], 1, 3, 3), generator=gen)
            imgs = apply_patch(x, m, offs, content)
            z = model(imgs.reshape(-1, 1, 12, 12)).reshape(2, offs.shape[0], -1)
            emp = z.gather(2, y[:, None, None].expand(2, offs.shape[0], 1)) - z
            assert bool((bound <= emp + 1e-5).all())
