"""Options of the preprocessing defences (§2.3), torch-free so the backend declaration can
check a spec's `preprocess lgs|dw { ... }` blocks without importing torch."""

from __future__ import annotations

import enum

import attrs


@attrs.frozen
class LGSConfig:
    """Local Gradient Smoothing; defaults scaled from the paper's 299x299 setting (window 15,
    stride 5) to small images."""

    window: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    stride: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    threshold: float = attrs.field(default=0.1, validator=attrs.validators.ge(0.0))
    smoothing: float = attrs.field(default=2.3, validator=attrs.validators.ge(0.0))  # λ


class Fill(enum.Enum):
    ZERO = "zero"
    MEAN = "mean"


@attrs.frozen
class DWConfig:
    """Digital Watermarking: blank the ``regions`` windows densest in saliency entries above
    the per-image ``quantile``."""

    window: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    quantile: float = attrs.field(
        default=0.9, validator=[attrs.validators.ge(0.0), attrs.validators.lt(1.0)]
    )
    regions: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    fill: Fill = attrs.field(default=Fill.ZERO, converter=Fill)
