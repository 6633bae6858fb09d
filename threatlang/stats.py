"""Order statistics that certify percentile smoothing (dissertation §3.4-3.5, Algorithm 4 of §5.6.5).

Shared math in the core (numpy/scipy only, no torch): smoothing over inputs (chapter 3) and
over parameters (chapter 5, the watermark backend) both read their ranks from here.

Percentile smoothing of ``f`` (Definition 1) is the ``p``-th percentile of ``f(x + G)``,
``G ~ N(0, sigma^2 I)``.  Lemma 3.1: for every ``||delta||_2 < eps``

    h_lower_{p_lower}(x) <= h_p(x + delta) <= h_upper_{p_upper}(x),
    p_lower = Phi(Phi^-1(p) - eps/sigma),   p_upper = Phi(Phi^-1(p) + eps/sigma).

Those two percentiles are unknown; with ``n`` i.i.d. samples ``X_i = f(x + G_i)`` sorted as
``K_1 <= ... <= K_n`` (``K_0 = -inf``, ``K_{n+1} = +inf``) we pick ranks so that

    P(K_{k_upper} >= h_upper_{p_upper}(x)) >= confidence   and
    P(K_{k_lower} <= h_lower_{p_lower}(x)) >= confidence.

Why the binomial form is exact-or-conservative: ``K_k >= y*`` iff fewer than ``k`` samples fall
strictly below ``y* = h_upper_{p_upper}``, and ``P[f < y*] <= p_upper``; so
``P(K_k >= y*) >= BinomCDF(k - 1; n, p_upper)`` and ``k_upper`` is the smallest such rank.
Symmetrically ``K_k <= y_* = h_lower_{p_lower}`` iff at least ``k`` samples are ``<= y_*`` and
``P[f <= y_*] >= p_lower``; so ``P(K_k <= y_*) >= BinomSF(k - 1; n, p_lower)`` and ``k_lower``
is the largest such rank.  This is the same choice as Algorithm 4 (which indexes the sorted
array from 0).

``confidence`` here is per side, as in §3.5.  The two-sided interval ``[K_{k_lower},
K_{k_upper}]`` then holds with probability at least ``1 - 2 (1 - confidence)``; use
:func:`per_side_confidence` to turn an interval-level confidence into the per-side one.

When ``n`` is too small the needed rank would be ``K_0`` or ``K_{n+1}`` (an infinite bound):
the answer is :class:`InsufficientSamples` carrying the smallest ``n`` that would do — never a
bound, and never an exception: a large ``eps/sigma`` needs an astronomical ``n`` (about
``-log(1 - confidence) / Phi(-eps/sigma)``, e.g. 1.5e24 samples at eps/sigma = 10), which is
computed in log space and reported, never handed to scipy.

>>> s = order_statistic_bounds(2000, eps_over_sigma=0.36 / 0.25, confidence=0.99999)
>>> (s.k_lower, s.k_upper)
(102, 1899)
"""

from __future__ import annotations

import math

import attrs
import numpy as np
from scipy import stats

__all__ = [
    "InsufficientSamples",
    "OrderStatistics",
    "EXACT_LIMIT",
    "certified_interval",
    "describe_samples",
    "min_samples",
    "order_statistic_bounds",
    "p_bounds",
    "per_side_confidence",
    "smoothed_percentile",
]


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")


def _check_p(p: float) -> None:
    if not 0.0 < p < 1.0:
        raise ValueError(f"percentile p must lie in (0, 1), got {p}")


def p_bounds(p: float, eps: float, sigma: float) -> tuple[float, float]:
    """Lemma 3.1's ``(p_lower, p_upper) = Phi(Phi^-1(p) -/+ eps / sigma)``."""
    _check_p(p)
    if sigma <= 0.0 or eps < 0.0:
        raise ValueError(f"need sigma > 0 and eps >= 0, got sigma={sigma}, eps={eps}")
    return _p_bounds_ratio(p, eps / sigma)


def _p_bounds_ratio(p: float, ratio: float) -> tuple[float, float]:
    z = float(stats.norm.ppf(p))
    return float(stats.norm.cdf(z - ratio)), float(stats.norm.cdf(z + ratio))


def per_side_confidence(interval_confidence: float, sides: int = 2) -> float:
    """Per-side confidence whose union bound over ``sides`` one-sided bounds gives the total."""
    _check_confidence(interval_confidence)
    return 1.0 - (1.0 - interval_confidence) / sides


@attrs.frozen
class OrderStatistics:
    """Ranks (1-based, ``K_k`` of §3.5) that bound ``h_{p_lower}`` below and ``h_{p_upper}`` above.

    ``index_lower`` / ``index_upper`` are the same ranks as 0-based indices into a sorted array.
    """

    n: int
    p: float
    p_lower: float
    p_upper: float
    confidence: float
    k_lower: int
    k_upper: int

    @property
    def index_lower(self) -> int:
        return self.k_lower - 1

    @property
    def index_upper(self) -> int:
        return self.k_upper - 1

    @property
    def index_median(self) -> int:
        """0-based index of the empirical ``p``-th percentile ``K_{floor(p n)}`` (Algorithm 1)."""
        return min(max(math.floor(self.p * self.n), 1), self.n) - 1


@attrs.frozen
class InsufficientSamples:
    """``n`` samples cannot certify this ``eps/sigma`` at this confidence: status ``unknown``."""

    n: int
    min_n: int | None  # None: more than 10^300 samples (see `min_samples`)
    reason: str


def _lower_rank(n: int, p_lower: float, confidence: float) -> int:
    """Largest k in [0, n] with P(Bin(n, p_lower) >= k) >= confidence (k = 0 always holds)."""
    lo, hi = 0, n  # invariant: lo satisfies, anything > hi does not
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if stats.binom.sf(mid - 1, n, p_lower) >= confidence:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _upper_rank(n: int, p_upper: float, confidence: float) -> int:
    """Smallest k in [1, n + 1] with P(Bin(n, p_upper) <= k - 1) >= confidence."""
    lo, hi = 1, n + 1  # k = n + 1 always holds (K_{n+1} = +inf)
    while lo < hi:
        mid = (lo + hi) // 2
        if stats.binom.cdf(mid - 1, n, p_upper) >= confidence:
            hi = mid
        else:
            lo = mid + 1
    return lo


#: beyond this many samples the exact binomial check is skipped: no run draws that many, scipy's
#: binomial needs n < 2^63, and the closed form below is exact up to rounding anyway
EXACT_LIMIT = 10**12


def min_samples(eps_over_sigma: float, confidence: float, p: float = 0.5) -> int | None:
    """Smallest ``n`` for which both ranks are finite (``k_lower >= 1`` and ``k_upper <= n``);
    ``None`` when it exceeds 10^300 (the percentile bounds are 0 and 1 in double precision).

    Closed form (exact): ``1 - (1 - p_lower)^n >= c`` and ``1 - p_upper^n >= c``, i.e.
    ``n >= log(1 - c) / log(1 - q)`` for ``q = p_lower`` and ``q = 1 - p_upper``; both tails are
    taken in log space (``logcdf``/``logsf``) so a tiny ``q`` neither rounds to 0 nor overflows.
    Counts up to `EXACT_LIMIT` are then confirmed with the binomial search itself.
    """
    _check_confidence(confidence)
    _check_p(p)
    if eps_over_sigma < 0:
        raise ValueError(f"eps/sigma must be >= 0, got {eps_over_sigma}")
    z = float(stats.norm.ppf(p))
    log_q = min(
        float(stats.norm.logcdf(z - eps_over_sigma)), float(stats.norm.logsf(z + eps_over_sigma))
    )
    log_n = math.log(-math.log1p(-confidence)) - _log_neg_log1m(log_q)
    if log_n > math.log(10.0) * 300:
        return None
    n = max(1, math.ceil(math.exp(log_n) * (1 - 1e-12)) - 1)
    if n > EXACT_LIMIT:
        return math.ceil(math.exp(log_n))
    p_lower, p_upper = _p_bounds_ratio(p, eps_over_sigma)
    while not _adequate(n, p_lower, p_upper, confidence):
        n += 1
    return n


def _log_neg_log1m(log_q: float) -> float:
    """``log(-log(1 - q))`` from ``log q``, accurate when ``q`` underflows a double."""
    if log_q > -20.0:
        return math.log(-math.log1p(-math.exp(log_q)))
    return log_q  # -log(1 - q) = q (1 + q/2 + ...), and q < 2e-9 here


def describe_samples(n: int | None) -> str:
    """A sample count for a message: exact when small, else its first three digits."""
    if n is None:
        return "1e300"
    if n <= EXACT_LIMIT:
        return f"{n}"
    exponent = len(str(n)) - 1
    return f"{int(str(n)[:3]) / 100:.2f}e+{exponent}"  # truncated, so "n >= ..." stays true


def _adequate(n: int, p_lower: float, p_upper: float, confidence: float) -> bool:
    return _lower_rank(n, p_lower, confidence) >= 1 and _upper_rank(n, p_upper, confidence) <= n


def order_statistic_bounds(
    n: int, eps_over_sigma: float, confidence: float, p: float = 0.5
) -> OrderStatistics | InsufficientSamples:
    """Choose ``K_{k_lower}``, ``K_{k_upper}`` by the binomial search of §3.5.

    Each one-sided bound holds with probability >= ``confidence`` over the draw of the ``n``
    samples.  Returns :class:`InsufficientSamples` (with the smallest adequate ``n``) when a
    rank would fall outside ``1..n``.
    """
    if n < 1:
        raise ValueError(f"need at least one sample, got n={n}")
    if eps_over_sigma < 0:
        raise ValueError(f"eps/sigma must be >= 0, got {eps_over_sigma}")
    _check_confidence(confidence)
    _check_p(p)
    p_lower, p_upper = _p_bounds_ratio(p, eps_over_sigma)
    k_lower = _lower_rank(n, p_lower, confidence)
    k_upper = _upper_rank(n, p_upper, confidence)
    if k_lower < 1 or k_upper > n:
        min_n = min_samples(eps_over_sigma, confidence, p)
        return InsufficientSamples(
            n=n,
            min_n=min_n,
            reason=(
                f"{n} samples cannot bound percentiles {p_lower:.4g}/{p_upper:.4g} "
                f"(eps/sigma={eps_over_sigma:.4g}) at confidence {confidence:.10g}; "
                f"need n >= {describe_samples(min_n)}"
                + (
                    ""
                    if min_n is not None and min_n <= EXACT_LIMIT
                    else ", more than any run draws"
                )
            ),
        )
    return OrderStatistics(
        n=n,
        p=p,
        p_lower=p_lower,
        p_upper=p_upper,
        confidence=confidence,
        k_lower=k_lower,
        k_upper=k_upper,
    )


def smoothed_percentile(sorted_samples: np.ndarray, stats_: OrderStatistics) -> np.ndarray:
    """Empirical percentile (the median for p = 0.5) of samples sorted along axis 0."""
    return np.asarray(sorted_samples)[stats_.index_median]


def certified_interval(
    sorted_samples: np.ndarray, stats_: OrderStatistics
) -> tuple[np.ndarray, np.ndarray]:
    """Certified ``[lo, hi]`` per coordinate from samples sorted along axis 0.

    ``lo <= h_p(x + delta) <= hi`` for all ``||delta||_2 < eps``, each side with the chosen
    confidence.  Works on numpy arrays and (via indexing) on torch tensors alike.
    """
    if sorted_samples.shape[0] != stats_.n:
        raise ValueError(f"expected {stats_.n} samples along axis 0, got {sorted_samples.shape[0]}")
    return sorted_samples[stats_.index_lower], sorted_samples[stats_.index_upper]
