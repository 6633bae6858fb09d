"""Encoding r (§3.5): sentinel padding, binning, sorting; torchvision-style padding."""

import math

import torch

from threatlang.backends.smoothing.detection.encoding import (
    Binning,
    EncodingConfig,
    Sorting,
    encode,
    num_bins,
)
from threatlang.backends.smoothing.detection.types import Detections, from_torchvision


def _dets(rows):
    """rows: per sample a list of (x1, y1, x2, y2, label, score)."""
    outs = []
    for r in rows:
        t = torch.tensor(r, dtype=torch.float32).reshape(-1, 6)
        outs.append({"boxes": t[:, :4], "labels": t[:, 4].long(), "scores": t[:, 5]})
    return from_torchvision(outs)


def _cfg(binning, sorting, slots=3):
    return EncodingConfig(binning, sorting, num_labels=3, image_size=(30, 30), slots_per_bin=slots)


A = (1, 1, 5, 5, 2, 0.9)  # centre (3, 3): top-left cell, label 2
B = (20, 2, 26, 8, 0, 0.5)  # centre (23, 5): top-right cell, label 0
C = (2, 20, 8, 28, 0, 0.7)  # centre (5, 24): bottom-left cell, label 0


def test_from_torchvision_pads_and_round_trips():
    d = _dets([[A, B], [C], []])
    assert d.boxes.shape == (3, 2, 4) and d.valid.tolist() == [[True, True], [True, False]] + [
        [False, False]
    ]
    img = d.image(0)
    assert img["labels"].tolist() == [2, 0] and torch.allclose(
        img["scores"], torch.tensor([0.9, 0.5])
    )


def test_sentinel_padding_and_threshold():
    d = _dets([[A, B], [B]])
    out = encode(d, 0.6, _cfg(Binning.NONE, Sorting.OBJECTNESS))
    assert out.shape == (2, 3, 5)
    assert out[0, 0].tolist() == [1, 1, 5, 5, 2]  # only A passes 0.6
    assert torch.isinf(out[0, 1:]).all() and torch.isinf(out[1]).all()


def test_sorting_objectness_vs_location():
    d = _dets([[B, C, A]])
    by_score = encode(d, 0.0, _cfg(Binning.NONE, Sorting.OBJECTNESS))[0, :, 4].tolist()
    assert (
        by_score == [2, 0, 0]
        and encode(d, 0.0, _cfg(Binning.NONE, Sorting.OBJECTNESS))[0, 1, 0] == 2
    )
    by_loc = encode(d, 0.0, _cfg(Binning.NONE, Sorting.LOCATION))[0, :, 0].tolist()
    assert by_loc == [1, 2, 20]  # horizontal centre most significant: A (3), C (5), B (23)


def test_same_boxes_in_any_order_encode_identically():
    """The point of sorting: a permuted detector output gives the same regression vector."""
    cfg = _cfg(Binning.LOCATION_LABEL, Sorting.LOCATION)
    a = encode(_dets([[A, B, C]]), 0.1, cfg)
    b = encode(_dets([[C, A, B]]), 0.1, cfg)
    assert torch.equal(a, b)


def test_label_binning_isolates_bins():
    """A box appearing in one bin does not shift the slots of another (Figure 3.3)."""
    cfg = _cfg(Binning.LABEL, Sorting.OBJECTNESS, slots=2)
    assert num_bins(cfg) == 3
    with_a = encode(_dets([[A, B]]), 0.0, cfg)[0]
    without_a = encode(_dets([[B]]), 0.0, cfg)[0]
    assert torch.equal(with_a[:2], without_a[:2])  # bin of label 0 unchanged
    assert with_a[4].tolist() == [1, 1, 5, 5, 2] and torch.isinf(without_a[4]).all()


def test_location_grid_bins_and_capacity():
    cfg = _cfg(Binning.LOCATION, Sorting.OBJECTNESS, slots=1)
    assert num_bins(cfg) == 9
    out = encode(_dets([[A, B, C, (0, 0, 2, 2, 1, 0.95)]]), 0.0, cfg)[0]
    assert out[0, 4] == 1  # top-left cell keeps only its best-scoring box (capacity 1)
    assert out[2, 0] == 20 and out[6, 0] == 2  # top-right cell 2, bottom-left cell 6
    finite = torch.isfinite(out[:, 0])
    assert finite.sum() == 3 and not math.isfinite(out[4, 0])


def test_batch_of_samples_is_encoded_independently():
    cfg = _cfg(Binning.LOCATION_LABEL, Sorting.LOCATION, slots=2)
    rows = [[A, B], [C], [B, A, C], []]
    batched = encode(_dets(rows), 0.0, cfg)
    for i, r in enumerate(rows):
        assert torch.equal(batched[i], encode(_dets([r]), 0.0, cfg)[0])


def test_detections_cat_pads_widths():
    d = Detections.cat([_dets([[A]]), _dets([[A, B, C]])])
    assert d.boxes.shape == (2, 3, 4) and d.valid.sum() == 4


def test_certify_encoded_matches_a_plain_sort():
    """The active-column sort gives exactly the order statistics of a full sort along samples."""
    from threatlang.backends.smoothing.detection.certify import certify_encoded
    from threatlang.stats import order_statistic_bounds

    g = torch.Generator().manual_seed(0)
    n = 200
    boxes = torch.rand((n, 6, 2), generator=g) * 15
    boxes = torch.cat([boxes, boxes + 1 + torch.rand((n, 6, 2), generator=g) * 10], dim=-1)
    d = Detections(
        boxes=boxes,
        labels=torch.randint(0, 3, (n, 6), generator=g),
        scores=torch.rand((n, 6), generator=g),
        valid=torch.rand((n, 6), generator=g) < 0.7,
    )
    stats = order_statistic_bounds(n, 0.5, 0.99)
    cfg = _cfg(Binning.LOCATION_LABEL, Sorting.LOCATION, slots=2)
    (cert,) = certify_encoded(d, (cfg,), (0.3,), stats)
    full = torch.sort(encode(d, 0.3, cfg), dim=0).values
    assert torch.equal(cert.median, full[stats.index_median])
    assert torch.equal(cert.lower, full[stats.index_lower])
    assert torch.equal(cert.upper, full[stats.index_upper])
