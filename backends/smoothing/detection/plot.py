"""Figure 3.1: certified boxes on an image.

Solid: the smoothed (median) box; thin white dashes: the ground truth.  Dotted: the farthest the box can move (outer and inner
extremes of the certified coordinate bounds).  A red X marks a box that is not certified
(it may vanish, its label may change, or its worst-case IoU falls below tau).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

__all__ = ["plot_certified_boxes"]


def _rect(ax, box, **kw):
    import matplotlib.patches as patches

    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(patches.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False, **kw))


def plot_certified_boxes(
    path: Path,
    images: list[torch.Tensor],
    certificates: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]],
    class_names: tuple[str, ...],
    title: str,
    ground_truth: list[torch.Tensor] | None = None,
) -> Path:
    """``certificates``: per image ``(median, lower, upper, certified_mask)`` over slots;
    ``ground_truth``: per image ``(m, 4)`` boxes, drawn thin and white."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = len(images)
    fig, axes = plt.subplots(1, cols, figsize=(3.2 * cols, 3.4), squeeze=False)
    gts = ground_truth if ground_truth is not None else [torch.zeros(0, 4)] * cols
    for ax, img, (med, lo, hi, ok), gt in zip(axes[0], images, certificates, gts, strict=True):
        ax.imshow(np.clip(img.cpu().numpy().transpose(1, 2, 0), 0, 1))
        ax.set_axis_off()
        for box in gt:
            _rect(ax, box, edgecolor="white", linewidth=0.6, linestyle="--")
        for s in range(med.shape[0]):
            if not torch.isfinite(med[s]).all():
                continue
            colour = "lime" if ok[s] else "red"
            _rect(ax, med[s, :4], edgecolor=colour, linewidth=1.5)
            if torch.isfinite(hi[s]).all():
                outer = (lo[s, 0], lo[s, 1], hi[s, 2], hi[s, 3])
                inner = (hi[s, 0], hi[s, 1], lo[s, 2], lo[s, 3])
                _rect(ax, outer, edgecolor=colour, linestyle=":", linewidth=1)
                if inner[2] > inner[0] and inner[3] > inner[1]:
                    _rect(ax, inner, edgecolor=colour, linestyle=":", linewidth=1)
            label = int(round(float(med[s, 4])))
            name = class_names[label] if 0 <= label < len(class_names) else str(label)
            ax.text(float(med[s, 0]), float(med[s, 1]) - 1, name, color=colour, fontsize=7)
            if not ok[s]:
                cx = float(med[s, 0] + med[s, 2]) / 2
                cy = float(med[s, 1] + med[s, 3]) / 2
                ax.plot([cx], [cy], marker="x", color="red", markersize=8)
    fig.suptitle(title, fontsize=8, wrap=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
