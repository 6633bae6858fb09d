"""Detection certificates attacked: no perturbation inside the ball leaves the certified boxes.

A "detector" whose box moves linearly with the input has an exactly known smoothed output:
under Gaussian noise each coordinate is Gaussian, so the median at ``x + delta`` is the
coordinate at ``x + delta`` itself.  We certify at ``x``, then evaluate that analytic median at
the worst-case shifts and at random shifts of norm just below eps; none may leave ``[lo, hi]``,
and a slot certified present stays present.  The DAG attack is exercised on the tiny CNN.
"""

import torch

from threatlang.backends.smoothing.detection.attack import dag_attack, supports_dag
from threatlang.backends.smoothing.detection.encoding import Binning, EncodingConfig, Sorting
from threatlang.backends.smoothing.detection.models import TinyDetector
from threatlang.backends.smoothing.detection.pipeline import SmoothingSetup, certify_image
from threatlang.backends.smoothing.detection.types import Detections
from threatlang.backends.smoothing.sampling import make_generator
from threatlang.stats import order_statistic_bounds

SIZE = 16
W = torch.zeros(4, 1, SIZE, SIZE)  # each box coordinate reads one direction of the image
for k in range(4):
    W[k, 0, k, :] = 1.0 / SIZE**0.5 * 2.0  # |w_k| = 2: a shift of eps moves a coordinate 2 eps
BASE = torch.tensor([[2.0, 2.0, 8.0, 8.0], [9.0, 9.0, 15.0, 14.0]])


def linear_detector(x: torch.Tensor) -> Detections:
    """Two boxes; box 0 moves with <w_k, x>, box 1 is fixed; scores high; labels 0 and 1."""
    shift = torch.einsum("bchw,kchw->bk", x, W)
    n = x.shape[0]
    boxes = torch.stack([BASE[0].expand(n, 4) + shift, BASE[1].expand(n, 4)], dim=1)
    return Detections(
        boxes=boxes,
        labels=torch.tensor([0, 1]).expand(n, 2),
        scores=torch.full((n, 2), 0.9),
        valid=torch.ones(n, 2, dtype=torch.bool),
    )


def _smoothed_box0(x: torch.Tensor) -> torch.Tensor:
    return BASE[0] + torch.einsum("chw,kchw->k", x, W)


def test_linear_detector_certificate_survives_worst_and_random_shifts():
    eps, sigma = 0.36, 0.25
    stats = order_statistic_bounds(1000, eps / sigma, 0.99999)
    enc = EncodingConfig(Binning.LABEL, Sorting.LOCATION, 2, (SIZE, SIZE), slots_per_bin=2)
    setup = SmoothingSetup(linear_detector, None, sigma, stats, (enc,), (0.1, 0.5), 0.5, 500)
    x = torch.zeros(1, SIZE, SIZE)
    gt_boxes, gt_labels = BASE.clone(), torch.tensor([0, 1])
    result = certify_image(setup, x, gt_boxes, gt_labels, make_generator(0))
    cert = result.certificates[0]
    lo, hi = cert.lower[0, :4], cert.upper[0, :4]  # label 0, first slot
    assert torch.isfinite(hi).all()
    # worst case along +-w_k for each coordinate, plus random directions
    gen = torch.Generator().manual_seed(0)
    shifts = [s * W[k] / W[k].norm() for k in range(4) for s in (1, -1)]
    shifts += [d / d.norm() for d in torch.randn((200, 1, SIZE, SIZE), generator=gen)]
    for d in shifts:
        moved = _smoothed_box0(x + eps * (1 - 1e-6) * d)
        assert (moved >= lo - 1e-4).all() and (moved <= hi + 1e-4).all()
    # the fixed box is certified exactly, with its label
    assert torch.equal(cert.lower[2, :4], BASE[1]) and torch.equal(cert.upper[2, :4], BASE[1])
    assert cert.lower[2, 4] == cert.upper[2, 4] == 1
    clean, certified = result.counts["label/location"][0.1]
    assert clean.correct == 2 and certified.correct == 2 and certified.predicted == 2


def test_insufficient_margin_is_not_certified():
    """With a large eps the moving box's worst-case IoU drops below tau: not counted."""
    stats = order_statistic_bounds(1000, 0.5 / 0.25, 0.999)
    enc = EncodingConfig(Binning.NONE, Sorting.OBJECTNESS, 2, (SIZE, SIZE), slots_per_bin=2)
    setup = SmoothingSetup(linear_detector, None, 0.25, stats, (enc,), (0.1,), 0.5, 500)
    result = certify_image(
        setup, torch.zeros(1, SIZE, SIZE), BASE.clone(), torch.tensor([0, 1]), make_generator(1)
    )
    _, certified = result.counts["none/objectness"][0.1]
    assert certified.correct == 1  # only the fixed box


def test_dag_attack_stays_in_the_ball_and_lowers_the_objective():
    torch.manual_seed(0)
    det = TinyDetector(num_classes=3).eval()
    assert supports_dag(det) and not supports_dag(linear_detector)
    img = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(0))
    boxes, labels = torch.tensor([[4.0, 4, 14, 14], [18, 18, 28, 28]]), torch.tensor([0, 2])
    adv = dag_attack(det, None, img, boxes, labels, 0.36, 0.25, 4, 2, make_generator(0))
    assert (adv - img).norm() < 0.36 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        before, after = det.raw(img[None])[0, 0], det.raw(adv[None])[0, 0]
    cells = [(2, 2), (5, 5)]
    assert sum(after[c] for c in cells) < sum(before[c] for c in cells)
