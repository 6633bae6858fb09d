"""Certified trigger-set accuracy by median smoothing over the parameters (Algorithms 3 and 4).

Corollary 5.0.1: with θ-noise G ~ N(0, σ²I) and f(θ) the trigger-set accuracy,

    h̲_{Φ(−ε/σ)}(θ) ≤ h_{50%}(θ + δ)   for every ‖δ‖₂ < ε.

The ball is over the module's parameters: buffers (BatchNorm running statistics) are neither
noised nor counted in ‖δ‖₂, and every certificate says so (``scope``).

Algorithm 3 estimates the left side from n draws: sort the accuracies f(θ + G_i) and take the
order statistic chosen by Algorithm 4's binomial search, which lower-bounds h̲_{Φ(−ε/σ)}(θ) with
probability at least ``confidence`` over the draws. The order statistics come from the shared
``threatlang.stats`` module; where n is too small for a radius the answer is ``None`` with
the smallest n that would do — never a bound.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs
import numpy as np
import torch
from torch import nn

from threatlang.stats import InsufficientSamples, order_statistic_bounds

from .config import NoiseStrategy
from .param_noise import accuracy_under_noise, param_count


@attrs.frozen
class RadiusCertificate:
    """The certified trigger accuracy at one radius ε, or ``None`` with the reason."""

    radius: float
    lower_bound: float | None
    p_lower: float | None = None
    rank: int | None = None  # 1-based order statistic K_k used as the bound
    reason: str | None = None


@attrs.frozen
class WatermarkCertificate:
    """Median smoothed trigger accuracy and its certified lower bound at every radius."""

    sigma: float
    n: int
    confidence: float
    median: float
    mean: float
    radii: tuple[RadiusCertificate, ...]
    parameters: int = 0  # values the noise and the l2 ball range over
    buffers: int = 0  # buffer values (e.g. BatchNorm running statistics) held fixed

    def by_radius(self) -> dict[float, float | None]:
        return {r.radius: r.lower_bound for r in self.radii}

    @property
    def scope(self) -> str:
        """What the certificate covers, in one sentence (records and the summary carry it)."""
        held = (
            f"; the model's {self.buffers} buffer values (e.g. BatchNorm running statistics) "
            "are held fixed: neither noised nor counted in the distance, so changing them is "
            "outside the certificate"
            if self.buffers
            else "; the model has no buffers"
        )
        return f"l2 changes to the {self.parameters} parameter values{held}"


def median_of(sorted_samples: np.ndarray) -> float:
    """Algorithm 3's median ``â_{⌊0.5 n⌋}`` (1-based rank ⌊n/2⌋, at least 1)."""
    n = len(sorted_samples)
    return float(sorted_samples[max(n // 2, 1) - 1])


def certify_samples(
    samples: np.ndarray | torch.Tensor,
    sigma: float,
    radii: Sequence[float],
    confidence: float,
) -> WatermarkCertificate:
    """Certify from accuracies f(θ + G_i) already drawn (any order). A NaN draw (non-finite
    logits) is numerical trouble: no radius is certified, and each says why."""
    a = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(a)
    rows = []
    bad = int(np.isnan(a).sum())
    if bad:
        reason = f"numerical trouble: non-finite logits in {bad} of {n} noisy evaluations"
        return WatermarkCertificate(
            sigma=float(sigma), n=n, confidence=float(confidence), median=float("nan"),
            mean=float("nan"),
            radii=tuple(RadiusCertificate(float(r), None, reason=reason) for r in radii),
        )  # fmt: skip
    for radius in radii:
        try:
            stats = order_statistic_bounds(n, eps_over_sigma=radius / sigma, confidence=confidence)
        except ValueError as err:  # ε/σ so large that Φ(−ε/σ) underflows: no n would do
            rows.append(RadiusCertificate(float(radius), None, reason=str(err)))
            continue
        if isinstance(stats, InsufficientSamples):
            rows.append(RadiusCertificate(float(radius), None, reason=stats.reason))
        else:
            rows.append(
                RadiusCertificate(
                    float(radius), float(a[stats.index_lower]), stats.p_lower, stats.k_lower
                )
            )
    return WatermarkCertificate(
        sigma=float(sigma), n=n, confidence=float(confidence), median=median_of(a),
        mean=float(a.mean()), radii=tuple(rows),
    )  # fmt: skip


def median_upper_bound(samples: np.ndarray | torch.Tensor, confidence: float) -> float | None:
    """An upper bound on h̄_{50%} at the sampled point, valid with probability ``confidence``.

    Used to falsify (and, in the soundness test, to check) a claim about the smoothed accuracy
    of an attacked model: ε = 0 in Lemma 3.1 gives the rank bounding the median from above.
    """
    a = np.sort(np.asarray(samples, dtype=np.float64))
    if np.isnan(a).any():  # numerical trouble: no bound either way
        return None
    stats = order_statistic_bounds(len(a), eps_over_sigma=0.0, confidence=confidence)
    return None if isinstance(stats, InsufficientSamples) else float(a[stats.index_upper])


def certify_watermark(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float,
    n: int,
    radii: Sequence[float],
    confidence: float,
    generator: torch.Generator,
    chunk: int = 32,
    strategy: NoiseStrategy = NoiseStrategy.LOOP,
) -> WatermarkCertificate:
    """Algorithm 3: n noisy trigger evaluations of the module at θ = ``params``, then certify."""
    module.eval()
    samples = accuracy_under_noise(module, params, x, y, sigma, n, generator, chunk, strategy)
    cert = certify_samples(samples.cpu().numpy(), sigma, radii, confidence)
    buffers = sum(int(b.numel()) for b in module.buffers() if b.is_floating_point())
    return attrs.evolve(cert, parameters=param_count(params), buffers=buffers)
