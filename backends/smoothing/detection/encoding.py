"""The encoding ``r`` of §3.5: a variable-length detection list -> one fixed regression vector.

Per noisy sample, detections above an objectness threshold are split into bins (by label, by
cell of a ``grid x grid`` location grid over the box centre, both, or none), sorted inside each
bin (by objectness, or by location), and written into ``slots_per_bin`` slots of 5 coordinates
``(x1, y1, x2, y2, label)``; unused slots hold the sentinel ``+inf``.  Everything is batched over
the ``N`` samples: stable sorts, a cumulative count for the rank inside a bin, and one scatter.
Detections beyond a bin's capacity are dropped (the capacity is part of the encoding ``r``, so
this is still a fixed function of the detector output and the certificate is unaffected).
"""

from __future__ import annotations

import enum

import attrs
import torch

from .types import Detections

__all__ = ["Binning", "EncodingConfig", "Sorting", "SENTINEL", "encode", "num_bins"]

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
    n, width = d.valid.shape
    bins = num_bins(cfg)
    valid = d.valid & (d.scores >= threshold)
    order = torch.arange(width, device=d.boxes.device).expand(n, width)
    for key in _sort_keys(d, cfg):
        idx = torch.sort(key.gather(1, order), dim=1, stable=True).indices
        order = order.gather(1, idx)
    bin_id = torch.where(valid, _bin_ids(d, cfg), torch.full_like(d.labels, bins))
    idx = torch.sort(bin_id.gather(1, order), dim=1, stable=True).indices
    order = order.gather(1, idx)
    sorted_bins = bin_id.gather(1, order)
    counts = torch.nn.functional.one_hot(sorted_bins, bins + 1).sum(dim=1)
    starts = counts.cumsum(dim=1) - counts
    rank = torch.arange(width, device=d.boxes.device) - starts.gather(1, sorted_bins)
    keep = (sorted_bins < bins) & (rank < cfg.slots_per_bin)
    dump = bins * cfg.slots_per_bin
    slot = torch.where(keep, sorted_bins * cfg.slots_per_bin + rank, torch.full_like(rank, dump))
    values = torch.cat([d.boxes, d.labels.unsqueeze(-1).to(d.boxes.dtype)], dim=-1)
    values = values.gather(1, order.unsqueeze(-1).expand(-1, -1, 5))
    out = torch.full((n, dump + 1, 5), SENTINEL, dtype=d.boxes.dtype, device=d.boxes.device)
    out.scatter_(1, slot.unsqueeze(-1).expand(-1, -1, 5), values)
    return out[:, :dump]
