"""A synthetic detection dataset: several labelled shapes per image with exact boxes.

Nothing is downloaded: images are drawn from a seeded ``numpy.random.Generator``.  Classes are
shapes (0 square, 1 disk, 2 triangle) in random colours on a smooth random background, so the
detector must learn shape rather than colour.  Pixel values lie in ``[0, 1]``.
"""

from __future__ import annotations

import attrs
import numpy as np

__all__ = ["CLASS_NAMES", "SceneConfig", "Scenes", "make_scenes"]

CLASS_NAMES = ("square", "disk", "triangle")


@attrs.frozen
class SceneConfig:
    size: int = 32
    min_objects: int = 1
    max_objects: int = 3
    min_side: int = 10
    max_side: int = 16
    max_overlap_iou: float = 0.05


@attrs.frozen
class Scenes:
    """``images (N, 3, H, W)`` float32; per image ``boxes (m, 4)`` float32 and ``labels (m,)``."""

    images: np.ndarray
    boxes: tuple[np.ndarray, ...]
    labels: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union


def _shape_mask(label: int, side: int, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    u, v = (xx + 0.5) / side, (yy + 0.5) / side  # in (0, 1) over the box
    if label == 0:
        return np.ones_like(u, dtype=bool)
    if label == 1:
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    return np.abs(u - 0.5) <= 0.5 * v  # triangle, apex up


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    base = rng.uniform(0.2, 0.8, size=(3, 1, 1))
    ramp = np.linspace(-1, 1, size)
    gx, gy = rng.uniform(-0.15, 0.15, size=(2, 3, 1, 1))
    img = base + gx * ramp[None, None, :] + gy * ramp[None, :, None]
    return img + rng.normal(0, 0.02, size=(3, size, size))


def _draw_one(rng: np.random.Generator, cfg: SceneConfig, img: np.ndarray, boxes: list) -> tuple:
    for _ in range(50):
        side = int(rng.integers(cfg.min_side, cfg.max_side + 1))
        x1, y1 = rng.integers(0, cfg.size - side + 1, size=2)
        box = np.array([x1, y1, x1 + side, y1 + side], dtype=np.float32)
        if all(_iou(box, b) <= cfg.max_overlap_iou for b in boxes):
            break
    else:
        return None
    label = int(rng.integers(0, len(CLASS_NAMES)))
    yy, xx = np.mgrid[0:side, 0:side]
    mask = _shape_mask(label, side, yy, xx)
    colour = rng.uniform(0, 1, size=3)
    while np.abs(colour - img[:, y1, x1]).max() < 0.3:  # keep contrast with the background
        colour = rng.uniform(0, 1, size=3)
    patch = img[:, y1 : y1 + side, x1 : x1 + side]
    patch[:, mask] = colour[:, None]
    # tight box around the drawn pixels (the triangle and the disk touch all four sides)
    ys, xs = np.nonzero(mask)
    tight = np.array([x1 + xs.min(), y1 + ys.min(), x1 + xs.max() + 1, y1 + ys.max() + 1])
    return tight.astype(np.float32), label


def make_scenes(count: int, seed: int, cfg: SceneConfig = SceneConfig()) -> Scenes:
    """``count`` scenes from ``seed`` (same seed, same scenes)."""
    rng = np.random.default_rng(seed)
    images, all_boxes, all_labels = [], [], []
    for _ in range(count):
        img = _background(rng, cfg.size)
        boxes: list[np.ndarray] = []
        labels: list[int] = []
        for _ in range(int(rng.integers(cfg.min_objects, cfg.max_objects + 1))):
            drawn = _draw_one(rng, cfg, img, boxes)
            if drawn is not None:
                boxes.append(drawn[0])
                labels.append(drawn[1])
        images.append(np.clip(img, 0, 1).astype(np.float32))
        all_boxes.append(np.stack(boxes).reshape(-1, 4).astype(np.float32))
        all_labels.append(np.array(labels, dtype=np.int64))
    return Scenes(np.stack(images), tuple(all_boxes), tuple(all_labels))
