"""Algorithm 1 (DETECT / CERTIFYDETECT): smoothed detection with certified boxes and labels.

``f = r o b o d``: an optional denoiser ``d``, the black-box detector ``b``, the encoding ``r``.
The ``n`` noisy forward passes are shared by every encoding and objectness threshold asked for;
only the (cheap) encoding and sort are repeated.  Each coordinate's bounds hold with the
configured per-side confidence (§3.5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import torch

from threatlang.stats import InsufficientSamples, OrderStatistics, order_statistic_bounds

from ..sampling import noise_batches
from .encoding import SENTINEL, EncodingConfig, encode_active, num_bins
from .types import Detections, from_torchvision

__all__ = ["SlotCertificate", "certify_encoded", "sample_detections", "DetectorFn"]

DetectorFn = Callable[[torch.Tensor], "Detections | Sequence[dict[str, torch.Tensor]]"]


@attrs.frozen
class SlotCertificate:
    """Median, lower and upper bound per slot and coordinate, each ``(slots, 5)``."""

    encoding: EncodingConfig
    threshold: float
    median: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor


def _as_detections(out: Detections | Sequence[dict[str, torch.Tensor]]) -> Detections:
    return out if isinstance(out, Detections) else from_torchvision(out)


@torch.no_grad()
def sample_detections(
    detector: DetectorFn,
    x: torch.Tensor,
    sigma: float,
    n: int,
    generator: torch.Generator,
    batch_size: int = 256,
    denoiser: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Detections:
    """Run ``b o d`` on ``n`` Gaussian-noised copies of the image ``x`` ``(C, H, W)``."""
    parts = []
    for batch in noise_batches(x, sigma, n, batch_size, generator):
        if denoiser is not None:
            batch = denoiser(batch)
        parts.append(_as_detections(detector(batch)))
    return Detections.cat(parts)


def _order_statistics(
    active: torch.Tensor, cols: torch.Tensor, slots: int, stats: OrderStatistics
) -> tuple[torch.Tensor, ...]:
    """Median, lower and upper order statistic of every coordinate, each ``(slots, 5)``.

    Only the active slots are searched (every other slot is the sentinel in every sample, so
    each of its order statistics is the sentinel), along a contiguous axis.
    """
    n, width = cols.shape[0], cols.shape[-1]
    out = [torch.full((slots, width), SENTINEL, dtype=cols.dtype, device=cols.device)]
    out += [out[0].clone(), out[0].clone()]
    if active.numel():
        ys = cols.reshape(n, -1).t().contiguous()
        ranks = (stats.index_median, stats.index_lower, stats.index_upper)
        for o, idx in zip(out, ranks, strict=True):  # three selections beat one full sort
            o[active] = torch.kthvalue(ys, idx + 1, dim=1).values.reshape(-1, width)
    return tuple(out)


def certify_encoded(
    samples: Detections,
    encodings: Sequence[EncodingConfig],
    thresholds: Sequence[float],
    stats: OrderStatistics,
) -> list[SlotCertificate]:
    """Encode, sort along the sample axis, read the median and the certified order statistics."""
    if len(samples) != stats.n:
        raise ValueError(f"expected {stats.n} samples, got {len(samples)}")
    out = []
    for enc in encodings:
        slots = num_bins(enc) * enc.slots_per_bin
        for t, (active, cols) in zip(
            thresholds, encode_active(samples, thresholds, enc), strict=True
        ):
            median, lower, upper = _order_statistics(active, cols, slots, stats)
            out.append(SlotCertificate(enc, t, median, lower, upper))
    return out


def detection_stats(
    n: int, eps: float, sigma: float, confidence: float
) -> OrderStatistics | InsufficientSamples:
    """Ranks for the median (p = 1/2) of every coordinate."""
    return order_statistic_bounds(n, eps / sigma, confidence)
