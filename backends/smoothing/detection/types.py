"""A padded batch of detections: the one form every detection module works on.

Detectors follow torchvision's output convention (per image a dict with ``boxes`` ``(m, 4)``
as ``x1, y1, x2, y2`` in pixels, ``labels`` ``(m,)`` and ``scores`` ``(m,)``);
:func:`from_torchvision` pads such a list into :class:`Detections` so that encoding thousands of
noisy samples is a handful of tensor operations instead of a Python loop per sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch

__all__ = ["Detections", "from_torchvision"]


@attrs.frozen
class Detections:
    """``boxes (N, D, 4)``, ``labels (N, D)`` int64, ``scores (N, D)``, ``valid (N, D)`` bool."""

    boxes: torch.Tensor
    labels: torch.Tensor
    scores: torch.Tensor
    valid: torch.Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def image(self, i: int) -> dict[str, torch.Tensor]:
        """Sample ``i`` in torchvision's convention (valid entries only)."""
        keep = self.valid[i]
        return {
            "boxes": self.boxes[i][keep],
            "labels": self.labels[i][keep],
            "scores": self.scores[i][keep],
        }

    @staticmethod
    def cat(parts: Sequence[Detections]) -> Detections:
        width = max(int(p.boxes.shape[1]) for p in parts)
        padded = [_pad(p, width) for p in parts]
        return Detections(
            boxes=torch.cat([p.boxes for p in padded]),
            labels=torch.cat([p.labels for p in padded]),
            scores=torch.cat([p.scores for p in padded]),
            valid=torch.cat([p.valid for p in padded]),
        )


def _pad(d: Detections, width: int) -> Detections:
    extra = width - int(d.boxes.shape[1])
    if extra == 0:
        return d
    n = d.boxes.shape[0]
    z = lambda *s, dtype: torch.zeros((n, extra, *s), dtype=dtype, device=d.boxes.device)  # noqa: E731
    return Detections(
        boxes=torch.cat([d.boxes, z(4, dtype=d.boxes.dtype)], 1),
        labels=torch.cat([d.labels, z(dtype=d.labels.dtype)], 1),
        scores=torch.cat([d.scores, z(dtype=d.scores.dtype)], 1),
        valid=torch.cat([d.valid, z(dtype=torch.bool)], 1),
    )


def from_torchvision(outputs: Sequence[dict[str, torch.Tensor]]) -> Detections:
    """Pad a list of torchvision-style per-image dicts into a :class:`Detections` batch."""
    n = len(outputs)
    width = max([int(o["boxes"].shape[0]) for o in outputs] + [1])
    device = outputs[0]["boxes"].device if n else torch.device("cpu")
    boxes = torch.zeros((n, width, 4), device=device)
    labels = torch.zeros((n, width), dtype=torch.long, device=device)
    scores = torch.zeros((n, width), device=device)
    valid = torch.zeros((n, width), dtype=torch.bool, device=device)
    for i, o in enumerate(outputs):
        m = int(o["boxes"].shape[0])
        boxes[i, :m] = o["boxes"].float()
        labels[i, :m] = o["labels"].long()
        scores[i, :m] = o["scores"].float()
        valid[i, :m] = True
    return Detections(boxes=boxes, labels=labels, scores=scores, valid=valid)
