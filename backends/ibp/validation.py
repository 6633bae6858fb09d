"""Points of a patch threat or an input ball for the engine-independent checks of
:mod:`threatlang.bounds.validate`, and the one call certification makes before it trusts a
bound: the bounded computation equals the model there, and no bound exceeds a margin observed
there."""

from __future__ import annotations

import torch
from torch import Tensor

from threatlang.bounds.inputs import InputSet
from threatlang.bounds.validate import (
    BoundCheck,
    check_bounds,
    check_deterministic,
    check_translation,
)

from .patches import PatchThreat, apply_patch, placements

#: points drawn per row from the threat region (besides the clean input)
POINTS = 4


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def patch_points(x: Tensor, threat: PatchThreat, k: int = POINTS) -> Tensor:
    """``k`` patched copies of each image, (k, N, C, H, W): random placements of random shapes
    filled with the lowest value, the highest, a random vertex of the value box, then random
    interior values (one batched write per shape)."""
    gen = _gen()
    n, c = x.shape[:2]
    shapes = placements(threat, tuple(x.shape[-2:]), x.device)
    which = torch.randint(len(shapes), (k,), generator=gen)
    out = x.new_empty(k, *x.shape)
    for s, (mask, offs) in enumerate(shapes):
        points = (which == s).nonzero().flatten()
        if points.numel() == 0:
            continue
        m, (h, w) = points.numel(), mask.shape
        pick = torch.randint(offs.shape[0], (n, m), generator=gen).to(x.device)
        hi = torch.rand((n, m, c, h, w), generator=gen) < 0.5
        hi[:, points == 0], hi[:, points == 1] = False, True  # all-low, all-high
        content = torch.where(hi, threat.high, threat.low).to(x)
        inside = points >= 3  # interior points: a graph may agree at vertices only
        u = torch.rand((n, int(inside.sum()), c, h, w), generator=gen).to(x)
        content[:, inside] = threat.low + u * (threat.high - threat.low)
        patched = apply_patch(x, mask, offs[pick], content)  # (N, m, C, H, W)
        out[points] = patched.transpose(0, 1)
    return out


def set_points(inputs: InputSet, k: int = POINTS) -> Tensor:
    return inputs.sample(k, _gen())


def validate(net, x: Tensor, y: Tensor, points: Tensor, lower: Tensor, what: str) -> BoundCheck:
    """Raise ``TranslationMismatch`` (an unsupported-layer error: ``unknown``) when the model
    is not deterministic or the engine's bounded computation differs from the model on ``x``
    or ``points``; otherwise the rows whose lower bound (N,) exceeds an observed margin."""
    pts = torch.cat([x[None], points])
    z = check_translation(net.model, net.bounded_forward, pts, what)
    check_deterministic(net.model, x, first=z[0])
    return check_bounds(lower, z, y)
