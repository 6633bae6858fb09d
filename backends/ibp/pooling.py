"""Bound pooling (§2.7.3, Table 2.5): merge the interval bounds of adjacent patch placements.

Placements form a grid (all / stride / corners locations). After a chosen layer, the boxes of
each ``g x g`` block of adjacent placements are replaced by their hull (max of the uppers, min
of the lowers); later layers then propagate one box per block instead of ``g * g``. The hull
contains every member's box, so the pooled margin bound is still a sound lower bound for every
member placement, only looser. ``pool n`` pools ``n x n`` blocks after the first layer;
``pool 2-2`` pools 2 x 2 after the first layer and again 2 x 2 after the second.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor

from threatlang.bounds import Box, propagate
from threatlang.bounds.engine import BoundedNetwork
from threatlang.bounds.nonlinear import BoundReLU

from .local import flat_linear, local_prefix, local_step
from .margins import elide
from .patches import PatchThreat, dense_box, placements, window_box


def _stages(value) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(b)) for a, b in value)


@attrs.frozen
class PoolConfig:
    """``stages``: (layer, block) pairs: after the ``layer``-th ReLU, pool ``block x block``."""

    stages: tuple[tuple[int, int], ...] = attrs.field(default=((1, 2),), converter=_stages)

    def __attrs_post_init__(self) -> None:
        layers = [s[0] for s in self.stages]
        if not self.stages or any(a < 1 or b < 1 for a, b in self.stages):
            raise ValueError("pool stages are (layer >= 1, block >= 1) pairs")
        if layers != sorted(set(layers)):
            raise ValueError("pool stages must name increasing layers")

    @staticmethod
    def pool(n: int) -> PoolConfig:
        return PoolConfig(((1, n),))

    @staticmethod
    def pool_2_2() -> PoolConfig:
        return PoolConfig(((1, 2), (2, 2)))

    @property
    def label(self) -> str:
        if len(self.stages) == 1 and self.stages[0][0] == 1:
            return f"pool {self.stages[0][1]}"
        return "pool " + "-".join(str(b) for _, b in self.stages)


def grid_shape(offs: Tensor) -> tuple[int, int]:
    """(rows, cols) when the placements ``(L, 2)`` are a full row-major grid, else ValueError."""
    rows, cols = torch.unique(offs[:, 0]), torch.unique(offs[:, 1])
    full = torch.cartesian_prod(rows, cols)
    if full.shape != offs.shape or not bool((full == offs).all()):
        raise ValueError("bound pooling needs placements on a grid (all, stride or corners)")
    return rows.numel(), cols.numel()


def pool_groups(grid: tuple[int, int], block: int, device: torch.device | str) -> Tensor:
    """``(L,)`` block index of every grid placement (blocks of ``block x block`` neighbours)."""
    r = torch.arange(grid[0], device=device) // block
    c = torch.arange(grid[1], device=device) // block
    return (r[:, None] * (-(-grid[1] // block)) + c[None, :]).flatten()


def pool_box(box: Box, batch: int, groups: Tensor) -> Box:
    """Hull of the member boxes per group: ``(batch * L, ...)`` -> ``(batch * G, ...)``."""
    n_loc, n_groups = groups.numel(), int(groups.max()) + 1
    shape = box.centre.shape[1:]
    lo = box.lo.reshape(batch, n_loc, -1)
    hi = box.hi.reshape(batch, n_loc, -1)
    idx = groups[None, :, None].expand_as(lo)
    base = lo.new_zeros(batch, n_groups, lo.shape[-1])
    plo = base.scatter_reduce(1, idx, lo, "amin", include_self=False)
    phi = base.scatter_reduce(1, idx, hi, "amax", include_self=False)
    return Box.from_bounds(plo.reshape(-1, *shape), phi.reshape(-1, *shape))


def pool_windows(
    clean: Tensor, win: Box, offs: Tensor, groups: Tensor, n_groups: int
) -> Box:
    """The hull per group of placements when each placement's box is the clean map ``clean``
    (B, C, H, W) except on its window ``win`` (B, L, C, h, w) at ``offs`` (B' | 1, L, 2):
    the clean map, min/max-reduced with every member's window. Every member box contains the
    clean point, so this is exactly the hull of the members' full maps, ``(B * G, C, H, W)``,
    without building one full map per placement."""
    b, l_, c, h, w = win.centre.shape
    big_h, big_w = clean.shape[-2:]
    dev = clean.device
    offs = offs.expand(b, l_, 2)
    rows = offs[..., 0, None] + torch.arange(h, device=dev)  # (B, L, h)
    cols = offs[..., 1, None] + torch.arange(w, device=dev)  # (B, L, w)
    chan = torch.arange(c, device=dev)
    g = groups.to(dev)[None, :, None, None, None]
    idx = (
        ((g * c + chan[None, None, :, None, None]) * big_h + rows[:, :, None, :, None]) * big_w
        + cols[:, :, None, None, :]
    ).reshape(b, -1)  # (B, L*C*h*w) into (B, G*C*H*W)
    base = clean.unsqueeze(1).expand(b, n_groups, c, big_h, big_w).reshape(b, -1)
    lo = base.scatter_reduce(1, idx, win.lo.reshape(b, -1), "amin", include_self=True)
    hi = base.scatter_reduce(1, idx, win.hi.reshape(b, -1), "amax", include_self=True)
    shape = (b * n_groups, c, big_h, big_w)
    return Box.from_bounds(lo.reshape(shape), hi.reshape(shape))


def _first_stage(
    net: BoundedNetwork,
    x: Tensor,
    mask: Tensor,
    offs: Tensor,
    low: float,
    high: float,
    scale: float,
    end: int,
    groups: Tensor,
    n_groups: int,
) -> Box | None:
    """The pooled box after ``net.body[:end]`` computed on patch windows (the clean pass once,
    each placement only where the patch reaches), or None when those layers are not local
    (then the dense path runs)."""
    n_local, has_flat_linear = local_prefix(net)
    b = x.shape[0]
    if end > n_local and not (has_flat_linear and end >= n_local + 2):
        return None
    win = window_box(x, mask, offs.unsqueeze(0), low, high, scale)
    clean, w_offs = x, offs.unsqueeze(0)
    for op in net.body[: min(end, n_local)]:
        win, w_offs = local_step(op, op.geometry, clean, win, w_offs)
        clean = op.forward(clean)
    if end <= n_local:
        return pool_windows(clean, win, w_offs, groups, n_groups)
    box = flat_linear(net.body[n_local + 1], clean, win, w_offs)  # (B * L, D)
    box = propagate(net.body[n_local + 2 : end], box)
    return pool_box(box, b, groups)


def _after_relu(net: BoundedNetwork, layer: int) -> int:
    seen = 0
    for i, op in enumerate(net.body):
        if isinstance(op, BoundReLU):
            seen += 1
            if seen == layer:
                return i + 1
    raise ValueError(f"cannot pool after layer {layer}: the network has {seen} ReLU layers")


def pooled_margins(
    net: BoundedNetwork,
    x: Tensor,
    y: Tensor,
    mask: Tensor,
    offs: Tensor,
    low: float,
    high: float,
    cfg: PoolConfig,
    scale: float = 1.0,
) -> Tensor:
    """Margin lower bounds ``(B, G, K)``, one per final block of pooled placements."""
    b = x.shape[0]
    grid = grid_shape(offs)
    box = None
    start = 0
    for layer, block in cfg.stages:
        end = _after_relu(net, layer)
        groups = pool_groups(grid, block, x.device)
        n_groups = int(groups.max()) + 1
        if box is None:  # the first stage: windows where the layers allow, else dense
            box = _first_stage(net, x, mask, offs, low, high, scale, end, groups, n_groups)
        else:
            box = pool_box(propagate(net.body[start:end], box), b, groups)
        if box is None:
            dense = propagate(net.body[:end], dense_box(x, mask, offs, low, high, scale))
            box = pool_box(dense, b, groups)
        grid = (-(-grid[0] // block), -(-grid[1] // block))
        start = end
    box = propagate(net.body[start:], box)
    return elide(net, box, y, grid[0] * grid[1])


class PooledPatchLoss:
    """Certificate loss (2.12) with the worst margin taken over pooled blocks of placements."""

    def __init__(self, threat: PatchThreat, cfg: PoolConfig = PoolConfig()) -> None:
        self.threat, self.cfg = threat, cfg

    def __call__(
        self, net: BoundedNetwork, x: Tensor, y: Tensor, scale: float, gen: torch.Generator
    ) -> Tensor:
        t = self.threat
        worst = [
            pooled_margins(net, x, y, mask, offs, t.low, t.high, self.cfg, scale).amin(1)
            for mask, offs in placements(t, tuple(x.shape[-2:]), x.device)
        ]
        return F.cross_entropy(-torch.stack(worst).amin(0), y)
