"""Worst-case margin bounds over every patch placement (2.11), in bounded-memory chunks."""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from .bounds import Box
from .engine import BoundConfig, BoundedNetwork, Method, margin_matrix
from .inputs import BoxInput
from .local import local_body_box
from .patches import PatchThreat, chunks, dense_box, placements


def _elide(net: BoundedNetwork, box: Box, y: Tensor, n_loc: int) -> Tensor:
    """Margin lower bounds (B, L, K) from body boxes (B * L, D) with the last layer merged."""
    b = y.shape[0]
    if net.last is None:
        yy = y.repeat_interleave(n_loc)
        lo, hi = box.lo.flatten(1), box.hi.flatten(1)
        m = lo.gather(1, yy[:, None]) - hi
        return m.scatter(1, yy[:, None], 0.0).reshape(b, n_loc, -1)
    lin = net.last.module
    c = margin_matrix(y, lin.out_features)
    w = c @ lin.weight  # (B, K, D)
    bias = c @ lin.bias if lin.bias is not None else w.new_zeros(w.shape[:2])
    centre = box.centre.reshape(b, n_loc, -1)
    radius = box.radius.reshape(b, n_loc, -1)
    out = torch.einsum("bkd,bld->blk", w, centre) - torch.einsum("bkd,bld->blk", w.abs(), radius)
    return out + bias[:, None, :]


def patch_margins(
    net: BoundedNetwork,
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
    the batch, or ``(B, L, 2)`` per image), class k."""
    n_loc = offs.shape[-2]
    if cfg.method is not Method.IBP:
        if offs.dim() == 3:
            raise ValueError("CROWN patch bounds take placements shared by the batch")
        box = dense_box(x, mask, offs, low, high, scale)
        m = net.margins(BoxInput(box), y.repeat_interleave(n_loc), cfg)
        return m.reshape(x.shape[0], n_loc, -1)
    if local:
        box = local_body_box(net, x, mask, offs, low, high, scale)
    elif offs.dim() == 2:
        box = net._body_box(BoxInput(dense_box(x, mask, offs, low, high, scale)), None)
    else:
        raise ValueError("the dense path takes placements shared by the batch")
    return _elide(net, box, y, n_loc)


@attrs.frozen
class WorstCase:
    """Per image: worst margin per class over all placements, and where it was attained."""

    margins: Tensor  # (B, K)
    shape_index: Tensor  # (B,) which mask of the union gave the worst runner-up margin
    location: Tensor  # (B, 2)


def worst_margins(
    net: BoundedNetwork,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    *,
    chunk: int = 256,
    cfg: BoundConfig = BoundConfig(),
    local: bool = True,
    scale: float = 1.0,
) -> WorstCase:
    """``min over placements`` of the margin bounds, never holding more than ``chunk``
    placements (times the batch) in memory at once."""
    b = x.shape[0]
    best = None
    where_shape = torch.zeros(b, dtype=torch.long, device=x.device)
    where_loc = torch.zeros(b, 2, dtype=torch.long, device=x.device)
    for s_idx, (mask, offs) in enumerate(placements(threat, tuple(x.shape[-2:]), x.device)):
        for part in chunks(offs, chunk):
            m = patch_margins(
                net, x, y, mask, part, threat.low, threat.high, scale=scale, cfg=cfg, local=local
            )
            m_min, arg = m.min(dim=1)  # (B, K)
            worst_cls = _runner_up(m_min, y)
            loc = part[arg.gather(1, worst_cls[:, None]).squeeze(1)]
            if best is None:
                best, where_loc = m_min, loc
                where_shape.fill_(s_idx)
                continue
            improved = _runner_up_value(m_min, y) < _runner_up_value(best, y)
            where_loc = torch.where(improved[:, None], loc, where_loc)
            where_shape = torch.where(improved, torch.full_like(where_shape, s_idx), where_shape)
            best = torch.minimum(best, m_min)
    return WorstCase(best, where_shape, where_loc)


def _runner_up(m: Tensor, y: Tensor) -> Tensor:
    return m.scatter(1, y[:, None], float("inf")).argmin(dim=1)


def _runner_up_value(m: Tensor, y: Tensor) -> Tensor:
    return m.scatter(1, y[:, None], float("inf")).amin(dim=1)
