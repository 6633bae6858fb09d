"""Statistical soundness: certified intervals fail no more often than 1 - confidence allows.

Functions with a known output law under Gaussian noise, where Lemma 3.1 is tight, so the exact
failure probability of each one-sided bound is ``P(Bin(n, p_bar) >= k_upper)`` — we check the
observed failure count with binomial tests both against the allowed ``1 - confidence`` (one-sided,
soundness) and against the exact predicted rate (two-sided, the ranks are not needlessly loose).
"""

import math

import pytest
import torch
from scipy import stats

from threatlang.backends.smoothing.classify import ABSTAIN, ClassifyConfig, certify
from threatlang.backends.smoothing.mean import MeanConfig, certify_mean
from threatlang.backends.smoothing.regression import PercentileConfig, certify_regression
from threatlang.backends.smoothing.sampling import make_generator, monte_carlo
from threatlang.stats import OrderStatistics

TRIALS = 400
P_REJECT = 1e-3


def _not_too_many(failures: int, trials: int, allowed: float) -> bool:
    return stats.binomtest(failures, trials, allowed, alternative="greater").pvalue > P_REJECT


def _matches(failures: int, trials: int, exact: float) -> bool:
    return stats.binomtest(failures, trials, exact).pvalue > P_REJECT


def test_linear_gaussian_median_coverage():
    torch.set_num_threads(1)
    w = torch.tensor([0.6, -0.8, 0.0, 0.0])  # |w| = 1
    x = torch.tensor([0.3, 0.1, -0.2, 0.5])
    cfg = PercentileConfig(sigma=0.5, eps=0.3, n=60, confidence=0.9)
    stats_ = cfg.order_statistics()
    assert isinstance(stats_, OrderStatistics)
    # worst shifts along +-w: the true medians at x + delta are w.x +- eps
    top, bottom = float(w @ x) + cfg.eps, float(w @ x) - cfg.eps
    gen = make_generator(0)
    up_fail = lo_fail = 0
    for _ in range(TRIALS):
        cert = certify_regression(lambda z: z @ w, x, cfg, gen)
        up_fail += int(cert.upper < top)
        lo_fail += int(cert.lower > bottom)
    exact_up = stats.binom.sf(stats_.k_upper - 1, cfg.n, stats_.p_upper)
    exact_lo = stats.binom.cdf(stats_.k_lower - 1, cfg.n, stats_.p_lower)
    assert exact_up <= 1 - cfg.confidence and exact_lo <= 1 - cfg.confidence
    for fails, exact in ((up_fail, exact_up), (lo_fail, exact_lo)):
        assert _not_too_many(fails, TRIALS, 1 - cfg.confidence)
        assert _matches(fails, TRIALS, exact)


@pytest.mark.parametrize("side", ["lower", "upper"])
def test_step_function_median_coverage(side):
    """f = 1[z0 > 0]; at x0 = +-eps the worst shift sits exactly on the median's jump."""
    torch.set_num_threads(1)
    cfg = PercentileConfig(sigma=0.5, eps=0.25, n=50, confidence=0.9)
    stats_ = cfg.order_statistics()
    x0 = cfg.eps if side == "lower" else -cfg.eps
    x = torch.tensor([x0, 0.0])
    gen = make_generator(1)
    fails = 0
    for _ in range(TRIALS):
        cert = certify_regression(lambda z: (z[:, 0] > 0).float(), x, cfg, gen)
        # at x0 - eps (resp. x0 + eps) P[f = 1] = 1/2, so h_p takes the value 0 (resp. 1)
        fails += int(cert.lower > 0.0) if side == "lower" else int(cert.upper < 1.0)
    if side == "lower":
        exact = stats.binom.cdf(stats_.k_lower - 1, cfg.n, stats_.p_lower)
    else:
        exact = stats.binom.sf(stats_.k_upper - 1, cfg.n, stats_.p_upper)
    assert _not_too_many(fails, TRIALS, 1 - cfg.confidence)
    assert _matches(fails, TRIALS, exact)


def test_mean_smoothing_coverage():
    torch.set_num_threads(1)
    cfg = MeanConfig(sigma=0.5, eps=0.3, low=0.0, high=1.0, n=100, confidence=0.9)
    x = torch.tensor([0.2, 0.0])
    phi = stats.norm.cdf
    top, bottom = phi((0.2 + cfg.eps) / cfg.sigma), phi((0.2 - cfg.eps) / cfg.sigma)
    gen = make_generator(2)
    fails = 0
    for _ in range(TRIALS // 2):
        cert = certify_mean(lambda z: (z[:, 0] > 0).float(), x, cfg, gen)
        fails += int(cert.upper < top) + int(cert.lower > bottom)
        assert cert.lower <= cert.prediction <= cert.upper
    assert _not_too_many(fails, TRIALS, 1 - cfg.confidence)


def test_smoothed_classifier_radius_coverage():
    """Linear binary classifier: the smoothed classifier's true radius is |w.x| / |w|."""
    torch.set_num_threads(1)
    w = torch.tensor([1.0, 0.0])
    x = torch.tensor([0.4, 0.3])
    cfg = ClassifyConfig(sigma=0.5, num_classes=2, n0=20, n=200, alpha=0.1)
    gen = make_generator(3)
    bad = abstain = 0
    for _ in range(TRIALS // 2):
        logits = lambda z: torch.stack([-(z @ w), z @ w], dim=1)  # noqa: E731
        pred = certify(logits, x, cfg, gen)
        if pred.label == ABSTAIN:
            abstain += 1
            continue
        bad += int(pred.label != 1 or pred.radius > 0.4)
    assert _not_too_many(bad, TRIALS // 2, cfg.alpha)
    assert abstain < TRIALS // 4  # the true p_A = Phi(0.8) = 0.79 is far from 1/2


def test_insufficient_samples_is_unknown_and_costs_no_forward():
    calls = []

    def f(z):
        calls.append(z.shape[0])
        return z.sum(dim=1)

    cfg = PercentileConfig(sigma=0.25, eps=0.36, n=100, confidence=0.99999)
    out = certify_regression(f, torch.zeros(3), cfg, make_generator(0))
    assert not isinstance(out, OrderStatistics) and out.min_n == 148 and calls == []


def test_monte_carlo_is_seeded_and_batched():
    x = torch.zeros(5)
    a = monte_carlo(lambda z: z, x, 1.0, 70, make_generator(7), batch_size=16)
    b = monte_carlo(lambda z: z, x, 1.0, 70, make_generator(7), batch_size=16)
    assert a.shape == (70, 5) and torch.equal(a, b)
    assert abs(float(a.std()) - 1.0) < 0.15 and math.isfinite(float(a.mean()))
