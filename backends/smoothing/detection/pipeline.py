"""One image through Algorithm 1 for every encoding asked for, reduced to counts and boxes.

``certify_image`` is the unit of work of the run loop (a top-level function of plain inputs, so
an out-of-process executor can ship it): sample ``n`` noisy detections once, then for every
(sorting, binning, threshold) encode, sort, read median/bounds, and count clean and certified
hits against the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import torch

from threatlang.stats import OrderStatistics

from .certify import SlotCertificate, certify_encoded, sample_detections
from .encoding import Binning, EncodingConfig, Sorting
from .metrics import Counts, certified_counts, smoothed_counts

__all__ = ["ImageResult", "SmoothingSetup", "certify_image", "combo_key"]


def combo_key(enc: EncodingConfig) -> str:
    return f"{enc.binning.value}/{enc.sorting.value}"


@attrs.frozen
class SmoothingSetup:
    """Everything fixed across images: the pipeline ``r o b o d`` and the statistics."""

    detector: Callable
    denoiser: Callable | None
    sigma: float
    stats: OrderStatistics
    encodings: tuple[EncodingConfig, ...]
    thresholds: tuple[float, ...]
    tau: float
    batch_size: int = 256


@attrs.frozen
class ImageResult:
    """Per-combination, per-threshold counts: ``(smoothed, certified)``; and the slot bounds."""

    counts: dict[str, dict[float, tuple[Counts, Counts]]]
    certificates: tuple[SlotCertificate, ...]
    worst_iou: dict[tuple[str, float], torch.Tensor]


def certify_image(
    setup: SmoothingSetup,
    image: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    generator: torch.Generator,
) -> ImageResult:
    samples = sample_detections(
        setup.detector,
        image,
        setup.sigma,
        setup.stats.n,
        generator,
        setup.batch_size,
        setup.denoiser,
    )
    certs = certify_encoded(samples, setup.encodings, setup.thresholds, setup.stats)
    counts: dict[str, dict[float, tuple[Counts, Counts]]] = {}
    worst: dict[tuple[str, float], torch.Tensor] = {}
    gt_boxes, gt_labels = gt_boxes.to(image.device), gt_labels.to(image.device)
    for c in certs:
        key = combo_key(c.encoding)
        clean = smoothed_counts(c.median, gt_boxes, gt_labels, setup.tau)
        cert, wc = certified_counts(c.lower, c.upper, gt_boxes, gt_labels, setup.tau)
        counts.setdefault(key, {})[c.threshold] = (clean, cert)
        worst[(key, c.threshold)] = wc
    return ImageResult(counts=counts, certificates=tuple(certs), worst_iou=worst)


def encodings_for(
    sorts: Sequence[Sorting],
    bins: Sequence[Binning],
    num_labels: int,
    image_size: tuple[int, int],
    slots_per_bin: int,
    grid: int,
) -> tuple[EncodingConfig, ...]:
    """Every binning x sorting combination, binning-major (the order of Table 3.1)."""
    return tuple(
        EncodingConfig(b, s, num_labels, image_size, slots_per_bin, grid)
        for b in bins
        for s in sorts
    )
