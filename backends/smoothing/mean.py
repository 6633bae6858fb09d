"""Mean smoothing for bounded regression (Corollary 3.0.1) — the baseline of §3.4.

``g(x) = E[f(x + G)]`` with ``f`` valued in ``[l, u]``.  ``eta(x) = sigma Phi^-1((g - l)/(u - l))``
is 1-Lipschitz, so ``g(x + delta)`` lies in ``l + (u - l) Phi((eta -/+ ||delta||)/sigma)``.
``g(x)`` itself is only estimated, so we first take a Hoeffding confidence interval on it (each
side with probability ``confidence``) and push its ends through the corollary — both maps are
monotone, so the result is a bound on ``g(x + delta)`` with the same confidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs
import torch
from scipy import stats

from .sampling import monte_carlo

__all__ = ["MeanCertificate", "MeanConfig", "certify_mean", "mean_bounds"]


@attrs.frozen
class MeanConfig:
    sigma: float = attrs.field(validator=attrs.validators.gt(0.0))
    eps: float = attrs.field(validator=attrs.validators.ge(0.0))
    low: float = 0.0
    high: float = 1.0
    n: int = attrs.field(default=2000, validator=attrs.validators.ge(1))
    confidence: float = 0.99999
    batch_size: int = 256

    def __attrs_post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"need low < high, got [{self.low}, {self.high}]")


@attrs.frozen
class MeanCertificate:
    prediction: torch.Tensor  # the empirical mean, an estimate of g(x)
    lower: torch.Tensor
    upper: torch.Tensor


def mean_bounds(
    mean_lo: torch.Tensor, mean_hi: torch.Tensor, config: MeanConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Corollary 3.0.1 applied to a confidence interval ``[mean_lo, mean_hi]`` on ``g(x)``."""
    span = config.high - config.low
    ratio = config.eps / config.sigma
    lo_q = ((mean_lo - config.low) / span).clamp(0.0, 1.0).double().cpu().numpy()
    hi_q = ((mean_hi - config.low) / span).clamp(0.0, 1.0).double().cpu().numpy()
    lo = stats.norm.cdf(stats.norm.ppf(lo_q) - ratio)
    hi = stats.norm.cdf(stats.norm.ppf(hi_q) + ratio)
    as_t = lambda a: torch.as_tensor(a, dtype=mean_lo.dtype, device=mean_lo.device)  # noqa: E731
    return config.low + span * as_t(lo), config.low + span * as_t(hi)


def certify_mean(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    config: MeanConfig,
    generator: torch.Generator,
) -> MeanCertificate:
    """Sample, clip to ``[l, u]`` (the corollary's premise), Hoeffding interval, corollary."""
    samples = monte_carlo(f, x, config.sigma, config.n, generator, config.batch_size)
    samples = samples.clamp(config.low, config.high)
    mean = samples.mean(dim=0)
    half = (config.high - config.low) * math.sqrt(
        math.log(1.0 / (1.0 - config.confidence)) / (2 * config.n)
    )
    lower, upper = mean_bounds(mean - half, mean + half, config)
    return MeanCertificate(prediction=mean, lower=lower, upper=upper)
