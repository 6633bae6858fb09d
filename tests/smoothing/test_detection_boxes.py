"""Worst-case IoU over certified bounds (§3.3), IoU, NMS, and the detection metrics."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from threatlang.backends.smoothing.detection.boxes import batched_nms, box_iou, worst_case_iou
from threatlang.backends.smoothing.detection.metrics import (
    Counts,
    average_precision,
    certified_counts,
    smoothed_counts,
    step_ap,
)

coord = st.floats(0, 20, allow_nan=False)


def test_iou_basics():
    a = torch.tensor([0.0, 0, 2, 2])
    assert box_iou(a, a) == 1
    assert box_iou(a, torch.tensor([1.0, 0, 3, 2])) == torch.tensor(1 / 3)
    assert box_iou(a, torch.tensor([5.0, 5, 6, 6])) == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(coord, min_size=12, max_size=12), st.integers(0, 2**31 - 1))
def test_worst_case_iou_is_a_lower_bound(vals, seed):
    """Random boxes inside the bounds never have lower IoU than the 16-corner minimum."""
    v = torch.tensor(vals)
    lo = torch.stack([v[0], v[1], v[0] + 5 + v[2] / 4, v[1] + 5 + v[3] / 4])
    hi = lo + torch.stack([v[4], v[5], v[6], v[7]]) / 5
    gt = torch.stack([v[8], v[9], v[8] + 1 + v[10], v[9] + 1 + v[11]])
    wc = worst_case_iou(lo, hi, gt)
    g = torch.Generator().manual_seed(seed)
    inside = lo + torch.rand((500, 4), generator=g) * (hi - lo)
    assert (box_iou(inside, gt.expand(500, 4)) >= wc - 1e-5).all()


def test_worst_case_iou_collapse_and_exact():
    gt = torch.tensor([0.0, 0, 10, 10])
    assert worst_case_iou(gt, gt, gt) == 1
    lo, hi = torch.tensor([0.0, 0, 4, 9]), torch.tensor([5.0, 1, 11, 11])
    assert worst_case_iou(lo, hi, gt) == 0  # x2 can fall below x1
    inf = torch.tensor([0.0, 0, 10, float("inf")])
    assert worst_case_iou(gt, inf, gt) == 0


def test_nms_keeps_best_per_class():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [1, 1, 10, 10], [1, 1, 10, 10], [20, 20, 25, 25]]])
    labels = torch.tensor([[0, 0, 1, 0]])
    keep = batched_nms(boxes, labels, torch.ones(1, 4, dtype=torch.bool), 0.4)
    assert keep.tolist() == [[True, False, True, True]]


def test_certified_and_smoothed_counts():
    gt = torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]])
    labels = torch.tensor([1, 2])
    inf = float("inf")
    lower = torch.tensor([[0.0, 0, 10, 10, 1], [19, 19, 29, 29, 2], [0, 0, 5, 5, 0]])
    upper = torch.tensor([[1.0, 1, 11, 11, 1], [21, 21, 31, 31, 2], [inf] * 5])
    counts, wc = certified_counts(lower, upper, gt, labels, 0.5)
    assert counts == Counts(correct=2, predicted=3, ground_truth=2)
    assert abs(float(wc[0]) - 81 / 119) < 1e-6 and wc[2] == 0  # x1, y1 = 1; x2, y2 = 11
    counts, _ = certified_counts(lower, upper, gt, torch.tensor([1, 0]), 0.5)
    assert counts.correct == 1  # label bounds must agree with the ground truth
    median = torch.tensor([[0.0, 0, 10, 10, 1], [inf] * 5, [20, 20, 30, 30, 0]])
    assert smoothed_counts(median, gt, labels, 0.5) == Counts(1, 2, 2)


def test_step_ap_and_average_precision():
    assert step_ap([Counts(1, 1, 4), Counts(2, 4, 4)]) == 0.25 * 1 + 0.25 * 0.5
    gt = [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}]
    perfect = [{"boxes": gt[0]["boxes"], "labels": gt[0]["labels"], "scores": torch.tensor([0.9])}]
    assert average_precision(perfect, gt) == 1.0
    wrong = [{**perfect[0], "labels": torch.tensor([1])}]
    assert average_precision(wrong, gt) == 0.0
    two = [
        {
            "boxes": torch.tensor([[50.0, 50, 60, 60], [0, 0, 10, 10]]),
            "labels": torch.tensor([0, 0]),
            "scores": torch.tensor([0.9, 0.8]),
        }
    ]
    assert abs(average_precision(two, gt) - 0.5) < 1e-9
