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

from .local import densify, flat_linear, local_prefix, local_step
from .margins import elide
from .patches import PatchThreat, gather_windows, placements, window_box


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


def pool_windowed(
    clean: Tensor, win: Box, offs: Tensor, groups: Tensor, n_groups: int
) -> tuple[Box, Tensor]:
    """``pool_windows`` kept windowed: each block's hull on the union of its members' windows
    (one window per block, ``(B, G, C, Hu, Wu)``, at offsets ``(1, G, 2)``), so the layers after
    it stay patch-local too. ``offs`` must be shared by the batch ``(1, L, 2)``."""
    b, l_, c, h, w = win.centre.shape
    big = clean.shape[-2:]
    dev = clean.device
    o = offs[0]  # (L, 2)
    g = groups.to(dev)
    first = o.new_full((n_groups, 2), 1 << 30).scatter_reduce(
        0, g[:, None].expand(-1, 2), o, "amin", include_self=True
    )
    last = o.new_full((n_groups, 2), -1).scatter_reduce(
        0, g[:, None].expand(-1, 2), o, "amax", include_self=True
    )
    size = [min(int((last - first)[:, d].max()) + (h, w)[d], big[d]) for d in range(2)]
    start = torch.stack([first[:, d].clamp(0, big[d] - size[d]) for d in range(2)], dim=-1)
    rel = o - start[g]  # member window inside its block's window
    base = gather_windows(clean, start[None], tuple(size))  # (B, G, C, Hu, Wu)
    rows = rel[:, 0, None] + torch.arange(h, device=dev)  # (L, h)
    cols = rel[:, 1, None] + torch.arange(w, device=dev)
    chan = torch.arange(c, device=dev)
    idx = (
        (
            (
                (g[:, None, None, None] * c + chan[None, :, None, None]) * size[0]
                + rows[:, None, :, None]
            )
            * size[1]
            + cols[:, None, None, :]
        )
        .reshape(1, -1)
        .expand(b, -1)
    )
    flat = base.reshape(b, -1)
    lo = flat.scatter_reduce(1, idx, win.lo.reshape(b, -1), "amin", include_self=True)
    hi = flat.scatter_reduce(1, idx, win.hi.reshape(b, -1), "amax", include_self=True)
    shape = (b, n_groups, c, size[0], size[1])
    return Box.from_bounds(lo.reshape(shape), hi.reshape(shape)), start[None]


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
    """Margin lower bounds ``(B, G, K)``, one per final block of pooled placements.

    Only what pooling needs is computed: the clean pass once; through the patch-local prefix
    of the network (convolutions, ReLUs) each placement carries only the window its patch
    reaches, and a pooling stage there leaves one window per block (the union of its
    members'); past the prefix, a Flatten+Linear reads only the window's weight columns and
    later stages pool full boxes. The hulls are the same as pooling every placement's
    full-image box, which the tests check."""
    b = x.shape[0]
    n_local, has_flat_linear = local_prefix(net)
    grid = grid_shape(offs)
    win = window_box(x, mask, offs.unsqueeze(0), low, high, scale)
    state = {"clean": x, "win": win, "offs": offs.unsqueeze(0), "at": 0}

    def local_to(stop: int) -> None:
        for op in net.body[state["at"] : stop]:
            state["win"], state["offs"] = local_step(
                op, op.geometry, state["clean"], state["win"], state["offs"]
            )
            state["clean"] = op.forward(state["clean"])
        state["at"] = max(state["at"], stop)

    def leave_local() -> tuple[Box, int]:
        local_to(n_local)
        if has_flat_linear:
            lin = net.body[n_local + 1]
            return flat_linear(lin, state["clean"], state["win"], state["offs"]), n_local + 2
        return densify(state["clean"], state["win"], state["offs"]), n_local

    box, at = None, 0
    for layer, block in cfg.stages:
        end = _after_relu(net, layer)
        groups = pool_groups(grid, block, x.device)
        n_groups = int(groups.max()) + 1
        if box is None and end <= n_local:
            local_to(end)
            state["win"], state["offs"] = pool_windowed(
                state["clean"], state["win"], state["offs"], groups, n_groups
            )
        else:
            if box is None:
                box, at = leave_local()
            box = pool_box(propagate(net.body[at:end], box), b, groups)
            at = end
        grid = (-(-grid[0] // block), -(-grid[1] // block))
    if box is None:
        box, at = leave_local()
    return elide(net, propagate(net.body[at:], box), y, grid[0] * grid[1])


def _after_relu(net: BoundedNetwork, layer: int) -> int:
    seen = 0
    for i, op in enumerate(net.body):
        if isinstance(op, BoundReLU):
            seen += 1
            if seen == layer:
                return i + 1
    raise ValueError(f"cannot pool after layer {layer}: the network has {seen} ReLU layers")


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
