"""Order statistics of §3.5 against exact integer arithmetic and the closed-form minimum n."""

import math

import mpmath
import numpy as np
import pytest
from scipy import stats

from threatlang.stats import (
    InsufficientSamples,
    OrderStatistics,
    certified_interval,
    min_samples,
    order_statistic_bounds,
    p_bounds,
    per_side_confidence,
    smoothed_percentile,
)


def _exact_pmf_sum(n: int, p: float, ks: range) -> mpmath.mpf:
    """Sum of Bin(n, p) probabilities over ``ks`` at 60 digits (independent of scipy)."""
    with mpmath.workdps(60):
        q = mpmath.mpf(p)
        return mpmath.fsum(mpmath.binomial(n, i) * q**i * (1 - q) ** (n - i) for i in ks)


def _exact_tail_le(k: int, n: int, p: float) -> mpmath.mpf:
    """P(Bin(n, p) <= k), summing over whichever tail is shorter."""
    if k < n // 2:
        return _exact_pmf_sum(n, p, range(k + 1))
    with mpmath.workdps(60):
        return 1 - _exact_pmf_sum(n, p, range(k + 1, n + 1))


def test_p_bounds_lemma_3_1_median():
    lo, hi = p_bounds(0.5, 0.36, 0.25)
    assert lo == pytest.approx(0.0749337, abs=1e-6)  # Phi(-1.44)
    assert hi == pytest.approx(0.9250663, abs=1e-6)  # Phi(+1.44)
    assert lo + hi == pytest.approx(1.0)


def test_p_bounds_general_percentile_and_zero_eps():
    lo, hi = p_bounds(0.8, 0.0, 1.0)
    assert lo == pytest.approx(0.8) and hi == pytest.approx(0.8)
    lo, hi = p_bounds(0.8, 0.5, 1.0)
    z = stats.norm.ppf(0.8)
    assert lo == pytest.approx(stats.norm.cdf(z - 0.5))
    assert hi == pytest.approx(stats.norm.cdf(z + 0.5))


def test_hand_checked_dissertation_setting():
    """n = 2000, sigma = 0.25, eps = 0.36, confidence 0.99999 (§3.6)."""
    s = order_statistic_bounds(2000, 0.36 / 0.25, 0.99999)
    assert isinstance(s, OrderStatistics)
    assert (s.k_lower, s.k_upper) == (102, 1899)
    assert (s.index_lower, s.index_upper, s.index_median) == (101, 1898, 999)
    # exactness: k_upper is the smallest rank with P(Bin <= k-1) >= c, checked with rationals
    c = mpmath.mpf(0.99999)
    assert _exact_tail_le(s.k_upper - 1, 2000, s.p_upper) >= c
    assert _exact_tail_le(s.k_upper - 2, 2000, s.p_upper) < c
    # k_lower is the largest rank with P(Bin >= k) >= c
    assert 1 - _exact_tail_le(s.k_lower - 1, 2000, s.p_lower) >= c
    assert 1 - _exact_tail_le(s.k_lower, 2000, s.p_lower) < c


@pytest.mark.parametrize("n,ratio,conf", [(100, 0.5, 0.99), (500, 1.0, 0.999), (57, 0.2, 0.9)])
def test_binary_search_matches_linear_scan(n, ratio, conf):
    s = order_statistic_bounds(n, ratio, conf)
    assert isinstance(s, OrderStatistics)
    ks = np.arange(0, n + 2)
    ok_upper = [k for k in ks if k >= 1 and stats.binom.cdf(k - 1, n, s.p_upper) >= conf]
    ok_lower = [k for k in ks if k <= n and stats.binom.sf(k - 1, n, s.p_lower) >= conf]
    assert s.k_upper == min(ok_upper) and s.k_lower == max(ok_lower)


def test_symmetry_for_median():
    s = order_statistic_bounds(1000, 0.8, 0.999)
    assert s.k_lower + s.k_upper == 1001


def test_too_few_samples_is_unknown_with_smallest_n():
    r = order_statistic_bounds(50, 1.44, 0.99999)
    assert isinstance(r, InsufficientSamples)
    assert r.n == 50 and "need n >=" in r.reason
    # the reported n is the smallest that certifies
    assert isinstance(order_statistic_bounds(r.min_n, 1.44, 0.99999), OrderStatistics)
    assert isinstance(order_statistic_bounds(r.min_n - 1, 1.44, 0.99999), InsufficientSamples)
    # closed form: 1 - (1 - p_lower)^n >= c
    p_lo, _ = p_bounds(0.5, 1.44, 1.0)
    assert r.min_n == math.ceil(math.log(1e-5) / math.log(1 - p_lo))


def test_min_samples_non_median():
    n = min_samples(0.3, 0.99, p=0.9)
    assert isinstance(order_statistic_bounds(n, 0.3, 0.99, p=0.9), OrderStatistics)
    assert isinstance(order_statistic_bounds(n - 1, 0.3, 0.99, p=0.9), InsufficientSamples)


def test_invalid_arguments():
    with pytest.raises(ValueError):
        order_statistic_bounds(0, 1.0, 0.9)
    with pytest.raises(ValueError):
        order_statistic_bounds(10, 1.0, 1.0)
    with pytest.raises(ValueError):
        p_bounds(1.0, 0.1, 0.25)


def test_per_side_confidence_union_bound():
    assert per_side_confidence(0.999) == pytest.approx(0.9995)
    assert per_side_confidence(0.9, sides=4) == pytest.approx(0.975)


def test_certified_interval_indexes_sorted_samples():
    s = order_statistic_bounds(200, 0.5, 0.99)
    samples = np.sort(np.random.default_rng(0).normal(size=(200, 3)), axis=0)
    lo, hi = certified_interval(samples, s)
    med = smoothed_percentile(samples, s)
    assert lo.shape == (3,) and np.all(lo <= med) and np.all(med <= hi)
    np.testing.assert_array_equal(lo, samples[s.k_lower - 1])
    with pytest.raises(ValueError):
        certified_interval(samples[:10], s)


@pytest.mark.parametrize("ratio,p", [(10.0, 0.5), (8.0, 0.1), (6.0, 0.5), (20.0, 0.9)])
def test_large_eps_over_sigma_is_unknown_with_the_exact_count(ratio, p):
    """Issue 15: eps/sigma = 10 raised "no n suffices" and eps/sigma = 8 at p = 0.1 handed
    scipy an n above 2^63. Both are `unknown` carrying the closed-form count, checked here
    against 50-digit arithmetic (a sample count always exists: Phi(-eps/sigma) > 0)."""
    conf = 0.99999
    r = order_statistic_bounds(2000, ratio, conf, p)
    assert isinstance(r, InsufficientSamples)
    with mpmath.workdps(50):
        z = mpmath.sqrt(2) * mpmath.erfinv(2 * mpmath.mpf(p) - 1)
        q = min(mpmath.ncdf(z - ratio), mpmath.ncdf(-(z + ratio)))
        exact = mpmath.log(1 - mpmath.mpf(conf)) / mpmath.log1p(-q)
    assert r.min_n == pytest.approx(float(exact), rel=1e-6)
    assert r.min_n > 2000 and "need" in r.reason


def test_ratio_beyond_double_precision_reports_no_count():
    r = order_statistic_bounds(2000, 40.0, 0.99999)
    assert isinstance(r, InsufficientSamples) and r.min_n is None
    assert "n >= 1e300" in r.reason
