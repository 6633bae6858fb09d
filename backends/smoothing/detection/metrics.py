"""Detection metrics: AP@tau of a base detector, and (certified) precision/recall per §3.6.

Certified recall = certifiably correct detections / ground-truth objects; certified precision =
certifiably correct / the most detections any perturbed input can produce (slots whose lower
bound is finite).  A detection is certifiably correct when its slot is certainly filled (upper
bound finite), its label bounds agree with the ground truth, and its worst-case IoU is >= tau.
AP from the few thresholds is the area under the precision/recall steps, a lower bound.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch

from .boxes import pairwise_iou, worst_case_iou

__all__ = [
    "Counts",
    "average_precision",
    "certified_counts",
    "greedy_matches",
    "smoothed_counts",
    "step_ap",
]


@attrs.frozen
class Counts:
    """Per-image or pooled counts at one objectness threshold."""

    correct: int = 0
    predicted: int = 0
    ground_truth: int = 0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.correct + other.correct,
            self.predicted + other.predicted,
            self.ground_truth + other.ground_truth,
        )

    @property
    def precision(self) -> float:
        return self.correct / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.correct / self.ground_truth if self.ground_truth else 0.0


def greedy_matches(score: torch.Tensor, ok: torch.Tensor) -> list[tuple[int, int]]:
    """One-to-one matching of predictions (rows) to ground truths (cols), best score first."""
    score = torch.where(ok, score, torch.full_like(score, -1.0))
    pairs = []
    used_r, used_c = set(), set()
    flat = torch.argsort(score.flatten(), descending=True).tolist()
    cols = score.shape[1]
    for f in flat:
        r, c = divmod(f, cols)
        if score[r, c] < 0:
            break
        if r not in used_r and c not in used_c:
            pairs.append((r, c))
            used_r.add(r)
            used_c.add(c)
    return pairs


def smoothed_counts(
    median: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, tau: float
) -> Counts:
    """Clean TP count of the smoothed detector: slots whose median is finite are detections."""
    present = torch.isfinite(median).all(-1)
    det = median[present]
    if det.shape[0] == 0 or gt_boxes.shape[0] == 0:
        return Counts(0, int(det.shape[0]), int(gt_boxes.shape[0]))
    iou = pairwise_iou(det[:, :4], gt_boxes.float())
    same = det[:, 4].round().long().unsqueeze(1) == gt_labels.unsqueeze(0)
    tp = len(greedy_matches(iou, same & (iou >= tau)))
    return Counts(tp, int(det.shape[0]), int(gt_boxes.shape[0]))


def certified_counts(
    lower: torch.Tensor,
    upper: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    tau: float,
) -> tuple[Counts, torch.Tensor]:
    """Certified counts and the per-slot best worst-case IoU against any ground truth."""
    slots = lower.shape[0]
    possible = int(torch.isfinite(lower[:, 0]).sum())
    certain = torch.isfinite(upper).all(-1)
    if gt_boxes.shape[0] == 0:
        return Counts(0, possible, 0), torch.zeros(slots)
    wc = worst_case_iou(
        lower[:, None, :4].expand(-1, gt_boxes.shape[0], -1),
        upper[:, None, :4].expand(-1, gt_boxes.shape[0], -1),
        gt_boxes.float()[None].expand(slots, -1, -1),
    )
    label_ok = (lower[:, 4:5] == upper[:, 4:5]) & (lower[:, 4:5] == gt_labels[None].float())
    ok = certain[:, None] & label_ok & (wc >= tau)
    correct = len(greedy_matches(wc, ok))
    return Counts(correct, possible, int(gt_boxes.shape[0])), wc.amax(dim=1)


def step_ap(counts: Sequence[Counts]) -> float:
    """Area under the precision/recall steps at decreasing thresholds (a lower bound on AP)."""
    area, prev_recall = 0.0, 0.0
    for c in counts:
        area += max(c.recall - prev_recall, 0.0) * c.precision
        prev_recall = max(prev_recall, c.recall)
    return area


def average_precision(
    predictions: Sequence[dict[str, torch.Tensor]],
    targets: Sequence[dict[str, torch.Tensor]],
    tau: float = 0.5,
) -> float:
    """All-point interpolated AP@tau, classes pooled, greedy per-image matching by score."""
    scored: list[tuple[float, bool]] = []
    total = 0
    for pred, tgt in zip(predictions, targets, strict=True):
        total += int(tgt["boxes"].shape[0])
        if pred["boxes"].shape[0] == 0:
            continue
        order = torch.argsort(pred["scores"], descending=True)
        boxes, labels, scores = pred["boxes"][order], pred["labels"][order], pred["scores"][order]
        taken: set[int] = set()
        iou = pairwise_iou(boxes.float(), tgt["boxes"].float()) if total else None
        for i in range(boxes.shape[0]):
            hit = False
            if iou is not None and tgt["boxes"].shape[0]:
                cand = (iou[i] >= tau) & (tgt["labels"] == labels[i])
                for j in torch.argsort(iou[i], descending=True).tolist():
                    if cand[j] and j not in taken:
                        taken.add(j)
                        hit = True
                        break
            scored.append((float(scores[i]), hit))
    if total == 0 or not scored:
        return 0.0
    scored.sort(key=lambda s: -s[0])
    hits = np.array([h for _, h in scored], dtype=float)
    tp = np.cumsum(hits)
    precision = tp / np.arange(1, len(hits) + 1)
    recall = tp / total
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    prev = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - prev) * precision))
