"""Patch geometry: location sets, boxes, and applied patches agree with each other."""

from __future__ import annotations

import pytest
import torch

from threatlang.backends.ibp.patches import (
    LocationKind,
    Locations,
    PatchThreat,
    apply_patch,
    dense_box,
    mask_tensor,
    offsets,
    square,
)


def test_location_sets() -> None:
    assert offsets(Locations(), (8, 8), (2, 2)).shape == (49, 2)
    corners = offsets(Locations(LocationKind.CORNERS), (8, 8), (2, 3)).tolist()
    assert corners == [[0, 0], [0, 5], [6, 0], [6, 5]]
    assert offsets(Locations(LocationKind.STRIDE, stride=3), (8, 8), (2, 2)).shape == (9, 2)
    pts = offsets(Locations(LocationKind.EXPLICIT, points=((1, 2), (0, 0))), (8, 8), (2, 2))
    assert pts.tolist() == [[0, 0], [1, 2]]
    with pytest.raises(ValueError, match="do not fit"):
        offsets(Locations(LocationKind.EXPLICIT, points=((7, 7),)), (8, 8), (2, 2))
    with pytest.raises(ValueError, match="does not fit"):
        offsets(Locations(), (4, 4), (5, 5))


def test_threat_validation() -> None:
    with pytest.raises(ValueError):
        PatchThreat(((False, False),))
    with pytest.raises(ValueError):
        PatchThreat((square(2),), low=1.0, high=0.0)


def test_patched_images_lie_in_their_box() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 7, 7, generator=gen)
    mask = mask_tensor(((True, False), (True, True)))
    offs = offsets(Locations(), (7, 7), (2, 2))
    box = dense_box(x, mask, offs, 0.2, 0.9)
    content = 0.2 + 0.7 * torch.rand(2, offs.shape[0], 3, 2, 2, generator=gen)
    imgs = apply_patch(x, mask, offs, content).reshape(-1, 3, 7, 7)
    assert bool(box.contains(imgs, tol=1e-6).all())
    changed = (imgs.reshape(2, -1, 3, 7, 7) != x[:, None]).any(2).flatten(2).sum(2)
    assert int(changed.max()) <= 3  # only masked pixels move
    assert float(box.radius.flatten(1).gt(0).sum(1).max()) == 3 * 3
