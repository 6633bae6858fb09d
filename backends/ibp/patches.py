"""Patch threat geometry: masks, location sets, and the input boxes a patch induces (§2.4.2).

A patch placed at location ``(row, col)`` (top-left of the mask's bounding box) frees the masked
pixels to any value in ``[low, high]``; the other pixels stay at the image's values.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence

import attrs
import torch
from torch import Tensor

from threatlang.bounds import Box

MaskRows = tuple[tuple[bool, ...], ...]


class LocationKind(enum.Enum):
    ALL = "all"
    CORNERS = "corners"
    STRIDE = "stride"
    EXPLICIT = "explicit"


@attrs.frozen
class Locations:
    kind: LocationKind = LocationKind.ALL
    stride: int = 1
    points: tuple[tuple[int, int], ...] = ()


def square(n: int) -> MaskRows:
    return tuple(tuple(True for _ in range(n)) for _ in range(n))


def _check_mask(mask: MaskRows) -> MaskRows:
    if not mask or not mask[0] or len({len(r) for r in mask}) != 1:
        raise ValueError("a patch mask must be a non-empty rectangle of booleans")
    if not any(any(r) for r in mask):
        raise ValueError("a patch mask must select at least one pixel")
    return tuple(tuple(bool(v) for v in r) for r in mask)


@attrs.frozen
class PatchThreat:
    """Union over ``masks`` of patches at ``locations`` with values in ``[low, high]``."""

    masks: tuple[MaskRows, ...] = attrs.field(
        converter=lambda ms: tuple(_check_mask(m) for m in ms)
    )
    locations: Locations = Locations()
    low: float = 0.0
    high: float = 1.0

    def __attrs_post_init__(self) -> None:
        if not self.masks:
            raise ValueError("at least one patch mask is required")
        if self.high < self.low:
            raise ValueError("patch value range is empty")


def mask_tensor(mask: MaskRows, device: torch.device | str = "cpu") -> Tensor:
    return torch.tensor(mask, dtype=torch.float32, device=device)


def offsets(locs: Locations, image_hw: tuple[int, int], mask_hw: tuple[int, int]) -> Tensor:
    """Top-left positions ``(L, 2)`` (int64) of every placement that fits in the image."""
    hmax, wmax = image_hw[0] - mask_hw[0], image_hw[1] - mask_hw[1]
    if hmax < 0 or wmax < 0:
        raise ValueError(f"patch {mask_hw} does not fit in image {image_hw}")
    if locs.kind is LocationKind.EXPLICIT:
        pts = [(r, c) for r, c in locs.points]
        bad = [p for p in pts if not (0 <= p[0] <= hmax and 0 <= p[1] <= wmax)]
        if bad:
            raise ValueError(f"patch locations {bad} do not fit in image {image_hw}")
        return torch.tensor(sorted(set(pts)), dtype=torch.long).reshape(-1, 2)
    if locs.kind is LocationKind.CORNERS:
        pts = sorted({(0, 0), (0, wmax), (hmax, 0), (hmax, wmax)})
        return torch.tensor(pts, dtype=torch.long)
    step = locs.stride if locs.kind is LocationKind.STRIDE else 1
    rows, cols = torch.arange(0, hmax + 1, step), torch.arange(0, wmax + 1, step)
    return torch.cartesian_prod(rows, cols).reshape(-1, 2)


def patch_bounds(
    x: Tensor, m: Tensor, low: float, high: float, scale: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Bounds where mask ``m`` is set: ``[low, high]`` (shrunk towards ``x`` when scale < 1)."""
    lo = x - scale * (x - low) * m
    hi = x + scale * (high - x) * m
    return lo, hi


def dense_box(
    x: Tensor, mask: Tensor, offs: Tensor, low: float, high: float, scale: float = 1.0
) -> Box:
    """Full-image boxes ``(B * L, C, H, W)`` for every image and placement; ``offs`` is
    ``(L, 2)`` shared by the batch or ``(B, L, 2)`` per image."""
    b, c, h, w = x.shape
    full = offs if offs.dim() == 3 else offs.unsqueeze(0)
    n_loc = full.shape[1]
    mh, mw = mask.shape
    rows = full[..., 0, None] + torch.arange(mh, device=x.device)
    cols = full[..., 1, None] + torch.arange(mw, device=x.device)
    placed = x.new_zeros(full.shape[0], n_loc, h, w)
    bi = torch.arange(full.shape[0], device=x.device)[:, None, None, None]
    li = torch.arange(n_loc, device=x.device)[None, :, None, None]
    placed[bi, li, rows[..., :, None], cols[..., None, :]] = mask
    lo, hi = patch_bounds(x.unsqueeze(1), placed[:, :, None], low, high, scale)
    return Box.from_bounds(lo.reshape(-1, c, h, w), hi.reshape(-1, c, h, w))


def gather_windows(x: Tensor, offs: Tensor, hw: tuple[int, int]) -> Tensor:
    """Windows ``(B, L, C, h, w)`` of ``x`` (B, C, H, W) at offsets ``(B' | 1, L, 2)``."""
    rows = offs[..., 0, None] + torch.arange(hw[0], device=x.device)
    cols = offs[..., 1, None] + torch.arange(hw[1], device=x.device)
    bi = torch.arange(x.shape[0], device=x.device)[:, None, None, None]
    win = x[bi, :, rows[..., :, None], cols[..., None, :]]  # (B, L, h, w, C)
    return win.permute(0, 1, 4, 2, 3)


def window_box(
    x: Tensor, mask: Tensor, offs: Tensor, low: float, high: float, scale: float = 1.0
) -> Box:
    """Boxes ``(B, L, C, h, w)`` over each placement's bounding box only."""
    win = gather_windows(x, offs, tuple(mask.shape))
    lo, hi = patch_bounds(win, mask, low, high, scale)
    return Box.from_bounds(lo, hi)


def apply_patch(x: Tensor, mask: Tensor, offs: Tensor, content: Tensor) -> Tensor:
    """Images ``(B, L, C, H, W)``: ``content`` (B, L, C, h, w) written where the mask is set."""
    b, c, h, w = x.shape
    mh, mw = mask.shape
    out = x.unsqueeze(1).expand(b, offs.shape[-2], c, h, w).clone()
    rows = offs[..., 0, None] + torch.arange(mh, device=x.device)
    cols = offs[..., 1, None] + torch.arange(mw, device=x.device)
    bi = torch.arange(b, device=x.device)[:, None, None, None]
    li = torch.arange(offs.shape[-2], device=x.device)[None, :, None, None]
    win = out[bi, li, :, rows[..., :, None], cols[..., None, :]].permute(0, 1, 4, 2, 3)
    new = win * (1 - mask) + content * mask
    out[bi, li, :, rows[..., :, None], cols[..., None, :]] = new.permute(0, 1, 3, 4, 2)
    return out


def chunks(offs: Tensor, size: int) -> Iterator[Tensor]:
    """Split placements ``(..., L, 2)`` along L into chunks of at most ``size``."""
    for start in range(0, offs.shape[-2], max(1, size)):
        yield offs[..., start : start + size, :]


def placements(
    threat: PatchThreat, image_hw: tuple[int, int], device: torch.device | str = "cpu"
) -> Sequence[tuple[Tensor, Tensor]]:
    """``(mask (h, w), offsets (L, 2))`` per shape of the union."""
    out = []
    for m in threat.masks:
        mt = mask_tensor(m, device)
        out.append((mt, offsets(threat.locations, image_hw, tuple(mt.shape)).to(device)))
    return out
