"""Median/percentile smoothing certificates for a regression output ``f: R^d -> R^k`` (§3.4).

``certify_regression`` returns, per output coordinate, the smoothed prediction ``h_p(x)`` (the
empirical ``p``-th percentile) and an interval ``[lo, hi]`` that contains ``h_p(x + delta)`` for
every ``||delta||_2 < eps`` — each side with probability at least ``confidence`` over the noise
(Lemma 3.1 + the order statistics of :mod:`.percentile`).  Too few samples: ``unknown``.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch

from threatlang.stats import InsufficientSamples, OrderStatistics, order_statistic_bounds

from .sampling import monte_carlo

__all__ = ["PercentileConfig", "RegressionCertificate", "certify_regression", "certify_sorted"]


@attrs.frozen
class PercentileConfig:
    """How to smooth and certify: noise ``sigma``, radius ``eps``, ``n`` samples, percentile ``p``.

    ``confidence`` is per one-sided bound per coordinate, as in §3.5 of the dissertation.
    """

    sigma: float = attrs.field(validator=attrs.validators.gt(0.0))
    eps: float = attrs.field(validator=attrs.validators.ge(0.0))
    n: int = attrs.field(default=2000, validator=attrs.validators.ge(1))
    confidence: float = attrs.field(default=0.99999)
    p: float = 0.5
    batch_size: int = attrs.field(default=256, validator=attrs.validators.ge(1))

    def order_statistics(self) -> OrderStatistics | InsufficientSamples:
        return order_statistic_bounds(self.n, self.eps / self.sigma, self.confidence, self.p)


@attrs.frozen
class RegressionCertificate:
    """Smoothed prediction and certified bounds, each of the output's shape."""

    prediction: torch.Tensor
    lower: torch.Tensor
    upper: torch.Tensor
    stats: OrderStatistics


def certify_sorted(sorted_samples: torch.Tensor, stats: OrderStatistics) -> RegressionCertificate:
    """Certificate from samples already sorted along dim 0 (shared by detection)."""
    return RegressionCertificate(
        prediction=sorted_samples[stats.index_median],
        lower=sorted_samples[stats.index_lower],
        upper=sorted_samples[stats.index_upper],
        stats=stats,
    )


def certify_regression(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    config: PercentileConfig,
    generator: torch.Generator,
) -> RegressionCertificate | InsufficientSamples:
    """Algorithm 1's CERTIFYDETECT for a generic regressor: sample, sort, read order statistics.

    The ranks are chosen before any sampling, so an inadequate ``n`` costs no forward pass.
    """
    stats = config.order_statistics()
    if isinstance(stats, InsufficientSamples):
        return stats
    samples = monte_carlo(f, x, config.sigma, config.n, generator, config.batch_size)
    return certify_sorted(torch.sort(samples, dim=0).values, stats)
