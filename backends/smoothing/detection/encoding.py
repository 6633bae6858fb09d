"""The encoding ``r`` of §3.5: a variable-length detection list -> one fixed regression vector.

Per noisy sample, detections above an objectness threshold are split into bins (by label, by
cell of a ``grid x grid`` location grid over the box centre, both, or none), sorted inside each
bin (by objectness, or by location), and written into ``slots_per_bin`` slots of 5 coordinates
``(x1, y1, x2, y2, label)``; unused slots hold the sentinel ``+inf``.  Everything is batched over
the ``N`` samples: stable sorts, a running maximum for the rank inside a bin, and one scatter.
Detections beyond a bin's capacity are dropped (the capacity is part of the encoding ``r``, so
this is still a fixed function of the detector output and the certificate is unaffected).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import attrs
import torch

from .types import Detections

__all__ = [
    "Binning",
    "EncodingConfig",
    "Sorting",
    "SENTINEL",
    "encode",
    "encode_active",
    "encode_thresholds",
    "num_bins",
]

SENTINEL = float("inf")


class Binning(enum.Enum):
    NONE = "none"
    LABEL = "label"
    LOCATION = "location"
    LOCATION_LABEL = "label_location"


class Sorting(enum.Enum):
    OBJECTNESS = "objectness"
    LOCATION = "location"


@attrs.frozen
class EncodingConfig:
    """Encoding ``r``: binning, sorting, bin capacity, the location grid and the image size."""

    binning: Binning
    sorting: Sorting
    num_labels: int
    image_size: tuple[int, int]  # (height, width)
    slots_per_bin: int = 4
    grid: int = 3


def num_bins(cfg: EncodingConfig) -> int:
    cells = cfg.grid * cfg.grid
    return {
        Binning.NONE: 1,
        Binning.LABEL: cfg.num_labels,
        Binning.LOCATION: cells,
        Binning.LOCATION_LABEL: cells * cfg.num_labels,
    }[cfg.binning]


def _bin_ids(d: Detections, cfg: EncodingConfig) -> torch.Tensor:
    height, width = cfg.image_size
    cx = (d.boxes[..., 0] + d.boxes[..., 2]) / 2
    cy = (d.boxes[..., 1] + d.boxes[..., 3]) / 2
    gx = (cx * cfg.grid / width).floor().clamp(0, cfg.grid - 1).long()
    gy = (cy * cfg.grid / height).floor().clamp(0, cfg.grid - 1).long()
    cell = gy * cfg.grid + gx
    labels = d.labels.clamp(0, cfg.num_labels - 1)
    if cfg.binning is Binning.NONE:
        return torch.zeros_like(labels)
    if cfg.binning is Binning.LABEL:
        return labels
    if cfg.binning is Binning.LOCATION:
        return cell
    return cell * cfg.num_labels + labels


def _sort_keys(d: Detections, cfg: EncodingConfig) -> list[torch.Tensor]:
    """Keys from least to most significant (each applied as a stable sort)."""
    if cfg.sorting is Sorting.OBJECTNESS:
        return [-d.scores]
    cx = (d.boxes[..., 0] + d.boxes[..., 2]) / 2
    cy = (d.boxes[..., 1] + d.boxes[..., 3]) / 2
    # §3.5 footnote: "sort vertically then horizontally" -- horizontal ends up most significant
    return [cy, cx]


def encode(d: Detections, threshold: float, cfg: EncodingConfig) -> torch.Tensor:
    """``(N, bins * slots_per_bin, 5)`` regression vectors with ``+inf`` sentinel padding."""
    return encode_thresholds(d, (threshold,), cfg)[0]


def _slots(
    d: Detections, thresholds: Sequence[float], cfg: EncodingConfig
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Slot index ``(T, N, D)`` of every detection (``dump`` when dropped) and its 5 values.

    The within-bin order and the bin of each detection do not depend on the threshold, so they
    are computed once; the thresholds only change which detections are valid, and are stacked
    along the sample axis for a single bin sort and rank.
    """
    n, width = d.valid.shape
    t_count = len(thresholds)
    bins = num_bins(cfg)
    dev = d.boxes.device
    order = torch.arange(width, device=dev).expand(n, width)
    for key in _sort_keys(d, cfg):
        idx = torch.sort(key.gather(1, order), dim=1, stable=True).indices
        order = order.gather(1, idx)
    values = torch.cat([d.boxes, d.labels.unsqueeze(-1).to(d.boxes.dtype)], dim=-1)
    values = values.gather(1, order.unsqueeze(-1).expand(-1, -1, 5))
    bin_id = _bin_ids(d, cfg).gather(1, order)
    score = d.scores.gather(1, order)
    valid = d.valid.gather(1, order)
    thr = torch.as_tensor(thresholds, dtype=score.dtype, device=dev).view(-1, 1, 1)
    keep = valid.unsqueeze(0) & (score.unsqueeze(0) >= thr)  # (T, N, D)
    bin_id = torch.where(keep, bin_id.unsqueeze(0), torch.full_like(bin_id, bins)).flatten(0, 1)
    sorted_bins, idx = torch.sort(bin_id, dim=1, stable=True)
    # rank inside a bin: position minus the position where the bin's run starts
    pos = torch.arange(width, device=dev).expand_as(sorted_bins)
    starts = torch.ones_like(sorted_bins, dtype=torch.bool)
    starts[:, 1:] = sorted_bins[:, 1:] != sorted_bins[:, :-1]
    rank = pos - torch.where(starts, pos, torch.zeros_like(pos)).cummax(dim=1).values
    ok = (sorted_bins < bins) & (rank < cfg.slots_per_bin)
    dump = bins * cfg.slots_per_bin
    slot = torch.where(ok, sorted_bins * cfg.slots_per_bin + rank, torch.full_like(rank, dump))
    src = values.repeat(t_count, 1, 1).gather(1, idx.unsqueeze(-1).expand(-1, -1, 5))
    return slot.view(t_count, n, width), src.view(t_count, n, width, 5), dump


def encode_thresholds(
    d: Detections, thresholds: Sequence[float], cfg: EncodingConfig
) -> torch.Tensor:
    """:func:`encode` at several objectness thresholds at once: ``(T, N, slots, 5)``."""
    slot, src, dump = _slots(d, thresholds, cfg)
    t_count, n, width = slot.shape
    out = torch.full((t_count * n, dump + 1, 5), SENTINEL, dtype=src.dtype, device=src.device)
    out.scatter_(1, slot.view(-1, width, 1).expand(-1, -1, 5), src.view(-1, width, 5))
    return out[:, :dump].reshape(t_count, n, dump, 5)


def encode_active(
    d: Detections, thresholds: Sequence[float], cfg: EncodingConfig
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per threshold, the slots filled in at least one sample and their columns ``(N, A, 5)``.

    Every other slot is the sentinel in every sample; leaving it out is what keeps the cost of
    ``r`` small next to the detector (most of the 81 slots of a 3x3 grid x labels stay empty).
    """
    slot, src, dump = _slots(d, thresholds, cfg)
    out = []
    for s, v in zip(slot, src, strict=True):
        filled = torch.zeros(dump + 1, dtype=torch.bool, device=s.device)
        filled[s.flatten()] = True  # cheaper than torch.unique, which sorts
        active = filled[:dump].nonzero().flatten()
        lut = torch.full((dump + 1,), len(active), dtype=torch.long, device=s.device)
        lut[active] = torch.arange(len(active), device=s.device)
        cols = torch.full(
            (s.shape[0], len(active) + 1, 5), SENTINEL, dtype=v.dtype, device=v.device
        )
        cols.scatter_(1, lut[s].unsqueeze(-1).expand(-1, -1, 5), v)
        out.append((active, cols[:, : len(active)]))
    return out
