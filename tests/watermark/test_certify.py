import numpy as np
import torch
from scipy import stats

from threatlang.backends.watermark.certify import (
    certify_samples,
    certify_watermark,
    median_of,
    median_upper_bound,
)
from threatlang.backends.watermark.param_noise import detached_params
from threatlang.stats import order_statistic_bounds

from .conftest import tiny_mlp


def test_bound_is_the_shared_order_statistic():
    rng = np.random.default_rng(0)
    samples = rng.uniform(size=1000)
    cert = certify_samples(samples, sigma=0.5, radii=[0.0, 0.25, 0.5], confidence=0.99)
    a = np.sort(samples)
    for row in cert.radii:
        s = order_statistic_bounds(1000, row.radius / 0.5, 0.99)
        assert row.rank == s.k_lower and row.lower_bound == a[s.index_lower]
    bounds = [r.lower_bound for r in cert.radii]
    assert bounds == sorted(bounds, reverse=True)  # larger radius, weaker bound
    assert bounds[0] <= median_of(a) <= median_upper_bound(samples, 0.99)


def test_too_few_samples_give_no_bound_and_say_how_many_would():
    cert = certify_samples(np.ones(50), sigma=0.1, radii=[0.05, 0.3], confidence=0.999)
    near, far = cert.radii
    assert near.lower_bound == 1.0
    assert far.lower_bound is None and "need n >=" in far.reason
    assert cert.by_radius() == {0.05: 1.0, 0.3: None}


def test_corollary_holds_on_a_function_with_known_percentiles():
    """f(θ) = θ₀: h_50%(θ + δ) = θ₀ + δ₀ ≥ θ₀ − ε, and h̲_{Φ(−ε/σ)}(θ) = θ₀ − ε exactly.

    Over independent trials the certified bound may exceed θ₀ − ε at most a (1 − c) fraction of
    the time (binomial test at level 1e-3).
    """
    rng = np.random.default_rng(1)
    sigma, eps, conf, trials, n = 0.5, 0.4, 0.9, 300, 400
    failures = 0
    for _ in range(trials):
        cert = certify_samples(rng.normal(0.0, sigma, n), sigma, [eps], conf)
        failures += cert.radii[0].lower_bound > -eps
    assert stats.binomtest(failures, trials, 1 - conf, alternative="greater").pvalue > 1e-3


def test_certify_watermark_draws_noise_around_the_given_parameters():
    model = tiny_mlp().eval()
    x = torch.rand(20, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    y = model(x).argmax(-1).detach()  # the model's own labels: accuracy 1 without noise
    cert = certify_watermark(
        model, detached_params(model), x, y, sigma=1e-4, n=200, radii=[1e-4], confidence=0.99,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert cert.median == 1.0 and cert.radii[0].lower_bound == 1.0
    loud = certify_watermark(
        model, detached_params(model), x, y, sigma=3.0, n=200, radii=[1.0], confidence=0.99,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    assert loud.mean < 0.9  # heavy noise scrambles the predictions
