"""Worst-case margin bounds over every patch placement (2.11), in bounded-memory chunks."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from threatlang.bounds import Box
from threatlang.bounds.engine import BoundConfig, BoundedNetwork, Method, margin_matrix
from threatlang.bounds.inputs import BoxInput
from threatlang.bounds.lirpa import LirpaNetwork

from .local import local_body_box
from .patches import PatchThreat, chunks, dense_box, placements

CROWN_BUDGET = 1 << 24
"""Coefficients (floats) a CROWN chunk may hold for the final specs; sets its placements."""


def elide(net: BoundedNetwork, box: Box, y: Tensor, n_loc: int) -> Tensor:
    """Margin lower bounds (B, L, K) from body boxes (B * L, D) with the last layer merged."""
    b = y.shape[0]
    if net.last is None:
        yy = y.repeat_interleave(n_loc)
        lo, hi = box.lo.flatten(1), box.hi.flatten(1)
        m = lo.gather(1, yy[:, None]) - hi
        return m.scatter(1, yy[:, None], 0.0).reshape(b, n_loc, -1)
    lin = net.last.module
    c = margin_matrix(y, lin.out_features, lin.weight.dtype)
    w = c @ lin.weight  # (B, K, D)
    bias = c @ lin.bias if lin.bias is not None else w.new_zeros(w.shape[:2])
    centre = box.centre.reshape(b, n_loc, -1)
    radius = box.radius.reshape(b, n_loc, -1)
    out = torch.einsum("bkd,bld->blk", w, centre) - torch.einsum("bkd,bld->blk", w.abs(), radius)
    return out + bias[:, None, :]


def patch_margins(
    net: BoundedNetwork | LirpaNetwork,
    x: Tensor,
    y: Tensor,
    mask: Tensor,
    offs: Tensor,
    low: float,
    high: float,
    *,
    scale: float = 1.0,
    cfg: BoundConfig = BoundConfig(),
    local: bool = True,
) -> Tensor:
    """Margin lower bounds ``(B, L, K)``: image b, placement l (offsets ``(L, 2)`` shared by
    the batch, or ``(B, L, 2)`` per image), class k. Linear bounds and auto_LiRPA take the
    placements as a batch of dense boxes; our IBP takes the fast receptive-field path."""
    n_loc = offs.shape[-2]
    if cfg.method is not Method.IBP or not isinstance(net, BoundedNetwork):
        if offs.dim() == 3:
            raise ValueError("CROWN patch bounds take placements shared by the batch")
        box = dense_box(x, mask, offs, low, high, scale)
        m = net.margins(BoxInput(box), y.repeat_interleave(n_loc), cfg)
        return m.reshape(x.shape[0], n_loc, -1)
    if local:
        box = local_body_box(net, x, mask, offs, low, high, scale)
    else:
        box = net.body_box(BoxInput(dense_box(x, mask, offs, low, high, scale)), None)
    return elide(net, box, y, n_loc)


@attrs.frozen
class WorstCase:
    """Per image and class: the worst margin bound over all placements, and where it was."""

    margins: Tensor  # (B, K)
    shape_index: Tensor  # (B, K) which mask of the union attained it
    location: Tensor  # (B, K, 2)

    def runner_up(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """(worst margin over classes j != y, that class) per image."""
        return self.margins.scatter(1, y[:, None], float("inf")).min(dim=1)


def use_local(image_hw: tuple[int, int]) -> bool:
    """Receptive-field engine or dense boxes: on tiny images the windows cover most of every
    feature map and the gathers cost more than they save (measured crossover ~14x14)."""
    return image_hw[0] * image_hw[1] >= 196


def worst_margins(
    net: BoundedNetwork | LirpaNetwork,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    *,
    chunk: int = 256,
    cfg: BoundConfig = BoundConfig(),
    local: bool | None = None,
    scale: float = 1.0,
) -> WorstCase:
    """``min over placements`` of the margin bounds (2.11), never holding more than ``chunk``
    placements (times the batch) in memory at once. ``local=None`` picks the engine."""
    local = use_local(tuple(x.shape[-2:])) if local is None else local
    if cfg.method is not Method.IBP or not isinstance(
        net, BoundedNetwork
    ):  # linear bounds hold (rows, specs, inputs) coefficients
        chunk = max(1, min(chunk, CROWN_BUDGET // (x.shape[0] * x[0].numel() * 16)))
    best = where_shape = where_loc = None
    for s_idx, (mask, offs) in enumerate(placements(threat, tuple(x.shape[-2:]), x.device)):
        for part in chunks(offs, chunk):
            m = patch_margins(
                net, x, y, mask, part, threat.low, threat.high, scale=scale, cfg=cfg, local=local
            )
            m_min, arg = m.min(dim=1)  # (B, K)
            loc = part[arg]  # (B, K, 2)
            if best is None:
                best, where_loc = m_min, loc
                where_shape = torch.full_like(arg, s_idx)
                continue
            better = m_min < best
            where_loc = torch.where(better[..., None], loc, where_loc)
            where_shape = torch.where(better, torch.full_like(where_shape, s_idx), where_shape)
            best = torch.minimum(best, m_min)
    return WorstCase(best, where_shape, where_loc)


def worst_margins_sparse(
    net: BoundedNetwork,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    *,
    chunk: int = 256,
    scale: float = 1.0,
) -> Tensor:
    """Same values as ``worst_margins(...).margins`` with autograd only through the attaining
    placements: at most one per class and image (§2.4.2 notes so few patches matter), so the
    backward pass costs K placements per image instead of every placement."""
    local = use_local(tuple(x.shape[-2:]))
    with torch.no_grad():
        wc = worst_margins(net, x, y, threat, chunk=chunk, local=local, scale=scale)
    parts = []
    for s_idx, (mask, _) in enumerate(placements(threat, tuple(x.shape[-2:]), x.device)):
        if not bool((wc.shape_index == s_idx).any()):
            continue
        m = patch_margins(
            net, x, y, mask, wc.location, threat.low, threat.high, scale=scale, local=local
        )
        m = m.amin(1)
        parts.append(torch.where(wc.shape_index == s_idx, m, torch.full_like(m, float("inf"))))
    return torch.stack(parts).amin(0)
