"""A small single-stage CNN detector and a DnCNN-style denoiser, trained from scratch.

``TinyDetector`` predicts, on a stride-4 grid, an objectness logit, class logits and a box per
cell (YOLO-style); :meth:`TinyDetector.forward` decodes with a top-k and greedy per-class NMS
into a padded :class:`Detections` batch, the same form the torchvision convention is padded into.
``DnCNN`` predicts the noise residual (Zhang et al. 2017) and returns the cleaned image.
"""

from __future__ import annotations

import torch
from torch import nn

from .boxes import batched_nms
from .types import Detections

__all__ = ["DnCNN", "TinyDetector", "scene_detector"]


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU(inplace=True))


class TinyDetector(nn.Module):
    """Grid detector for ``(B, 3, S, S)`` images in ``[0, 1]``; boxes in pixels."""

    def __init__(
        self,
        num_classes: int = 3,
        width: int = 32,
        top_k: int = 12,
        min_score: float = 0.05,
        nms_iou: float = 0.4,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.stride = 4
        self.top_k, self.min_score, self.nms_iou = top_k, min_score, nms_iou
        self.body = nn.Sequential(
            _conv(3, width // 2),
            _conv(width // 2, width, 2),
            _conv(width, width),
            _conv(width, 2 * width, 2),
            _conv(2 * width, 2 * width),
            _conv(2 * width, 2 * width),
        )
        self.head = nn.Conv2d(2 * width, 5 + num_classes, 1)

    def raw(self, x: torch.Tensor) -> torch.Tensor:
        """Head map ``(B, 5 + classes, S/4, S/4)``: obj logit, dx, dy, w, h, class logits."""
        return self.head(self.body(x))

    def boxes_from_raw(self, raw: torch.Tensor) -> torch.Tensor:
        """Per-cell boxes ``(B, cells, 4)`` in pixels from the raw head map."""
        b, _, gh, gw = raw.shape
        ys, xs = torch.meshgrid(
            torch.arange(gh, device=raw.device), torch.arange(gw, device=raw.device), indexing="ij"
        )
        cx = (xs + torch.sigmoid(raw[:, 1])) * self.stride
        cy = (ys + torch.sigmoid(raw[:, 2])) * self.stride
        size = self.stride * gw
        w = torch.sigmoid(raw[:, 3]) * size
        h = torch.sigmoid(raw[:, 4]) * size
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)
        return boxes.reshape(b, gh * gw, 4)

    def forward(self, x: torch.Tensor) -> Detections:
        raw = self.raw(x)
        b = raw.shape[0]
        scores = torch.sigmoid(raw[:, 0]).reshape(b, -1)
        labels = raw[:, 5:].argmax(dim=1).reshape(b, -1)
        boxes = self.boxes_from_raw(raw)
        k = min(self.top_k, scores.shape[1])
        top, idx = scores.topk(k, dim=1)  # sorted descending, as batched_nms expects
        boxes = boxes.gather(1, idx.unsqueeze(-1).expand(-1, -1, 4))
        labels = labels.gather(1, idx)
        valid = top >= self.min_score
        keep = batched_nms(boxes, labels, valid, self.nms_iou)
        return Detections(boxes=boxes, labels=labels, scores=top, valid=keep)


class DnCNN(nn.Module):
    """Residual denoiser: ``x_clean = x_noisy - net(x_noisy)``, clamped to ``[0, 1]``."""

    def __init__(self, channels: int = 3, width: int = 24, depth: int = 5) -> None:
        super().__init__()
        layers = [_conv(channels, width)] + [_conv(width, width) for _ in range(depth - 2)]
        self.net = nn.Sequential(*layers, nn.Conv2d(width, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.net(x)).clamp(0.0, 1.0)


def scene_detector(input_shape: tuple[int, ...], num_classes: int, **options) -> TinyDetector:
    """Builtin architecture ``scene_detector`` (called as ``builder(input_shape, classes)``)."""
    if input_shape[0] != 3:
        raise ValueError(f"scene_detector takes RGB images, got input shape {input_shape}")
    return TinyDetector(num_classes=num_classes, **options)
