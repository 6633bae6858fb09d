"""Box geometry: IoU, the worst-case IoU over certified coordinate bounds (§3.3), batched NMS."""

from __future__ import annotations

import itertools

import torch

__all__ = ["box_iou", "pairwise_iou", "worst_case_iou", "batched_nms"]

# the 16 corner boxes of {x1_lo, x1_hi} x {y1_lo, y1_hi} x {x2_lo, x2_hi} x {y2_lo, y2_hi}
_CORNERS = torch.tensor(list(itertools.product((False, True), repeat=4)))


def _area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise IoU of boxes ``(..., 4)`` broadcast against ``(..., 4)``; degenerate -> 0."""
    ix1 = torch.maximum(a[..., 0], b[..., 0])
    iy1 = torch.maximum(a[..., 1], b[..., 1])
    ix2 = torch.minimum(a[..., 2], b[..., 2])
    iy2 = torch.minimum(a[..., 3], b[..., 3])
    inter = (ix2 - ix1).clamp(min=0) * (iy2 - iy1).clamp(min=0)
    union = _area(a) + _area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU matrix ``(..., A, B)`` of boxes ``(..., A, 4)`` and ``(..., B, 4)``."""
    return box_iou(a.unsqueeze(-2), b.unsqueeze(-3))


def worst_case_iou(lower: torch.Tensor, upper: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Smallest IoU with ``target`` of any box whose coordinates lie in ``[lower, upper]``.

    Shapes ``(..., 4)``.  If ``x2_lo <= x1_hi`` or ``y2_lo <= y1_hi`` the box can collapse and the
    answer is 0; otherwise the minimum is attained at one of the 16 corner boxes (§3.3).
    Non-finite bounds give 0.
    """
    corners = torch.where(_CORNERS.to(lower.device), upper.unsqueeze(-2), lower.unsqueeze(-2))
    iou = box_iou(corners, target.unsqueeze(-2)).amin(dim=-1)
    collapse = (lower[..., 2] <= upper[..., 0]) | (lower[..., 3] <= upper[..., 1])
    finite = torch.isfinite(lower).all(-1) & torch.isfinite(upper).all(-1)
    return torch.where(collapse | ~finite, torch.zeros_like(iou), iou)


def batched_nms(
    boxes: torch.Tensor,
    labels: torch.Tensor,
    valid: torch.Tensor,
    iou_threshold: float,
) -> torch.Tensor:
    """Greedy per-class NMS for a batch ``(N, C, ...)``; returns the kept mask ``(N, C)``.

    Boxes are assumed sorted by descending score along ``C`` (callers take a top-k first), so
    the greedy pass is ``C`` vectorised steps rather than a Python loop per image.
    """
    iou = pairwise_iou(boxes, boxes)
    same = labels.unsqueeze(-1) == labels.unsqueeze(-2)
    later = torch.ones_like(iou, dtype=torch.bool).triu(diagonal=1)
    clash = (iou > iou_threshold) & same & later
    keep = valid.clone()
    for i in range(boxes.shape[1]):
        keep &= ~(keep[:, i : i + 1] & clash[:, i, :])
    return keep
