"""Optimised bounds (alpha-CROWN slopes, beta-CROWN split multipliers) against the exact
minimum over each split domain (a MILP with the split neurons' phases fixed): the bound must
never exceed it, must never be looser than CROWN, and a deliberately broken optimiser (the
multiplier's sign flipped) must be caught by the same check."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
highspy = pytest.importorskip("highspy")

from threatlang.backends.bab import fc_fast, optimize  # noqa: E402
from threatlang.backends.bab.adapter import EngineNet  # noqa: E402

from .helpers import mip_optimum, random_net  # noqa: E402

TOL = 1e-7


def mip_min_split(net, lo, hi, c, splits) -> float | None:
    """min of c . net(x) over the box with the ReLUs in `splits` fixed; None: empty domain."""
    return mip_optimum(net, lo, hi, c, splits, maximize=False)


def _cases(count: int):
    """Random nets, boxes, output rows and splits of 1-4 neurons unstable at the root."""
    rng = np.random.default_rng(7)
    for seed in range(count):
        net = random_net(seed, (3, 10, 10, 10, 3))
        engine = EngineNet(net, (3,))
        centre = rng.uniform(-1, 1, 3)
        lo, hi = centre - 0.6, centre + 0.6
        c = torch.from_numpy(rng.normal(size=(2, 3)))
        lo_t, hi_t = torch.from_numpy(lo)[None], torch.from_numpy(hi)[None]
        root = engine.bound(lo_t, hi_t, c)
        unstable = [
            (layer, j)
            for layer, (low, up) in enumerate(root.pre)
            for j in torch.nonzero((low[0] < 0) & (up[0] > 0)).flatten().tolist()
        ]
        if not unstable:
            continue
        picks = rng.choice(
            len(unstable), size=min(len(unstable), rng.integers(1, 5)), replace=False
        )
        splits = [torch.zeros(1, n, dtype=torch.int8) for n in engine.relu_sizes]
        for p in picks:
            layer, j = unstable[p]
            splits[layer][0, j] = int(rng.choice([-1, 1]))
        yield net, engine, lo, hi, lo_t, hi_t, c, tuple(splits), root


def _violations(steps: int, count: int) -> tuple[int, int, int]:
    """(cases whose optimised bound exceeds the exact minimum, cases checked, cases where the
    optimised bound beats CROWN on the same split domain by more than 1e-6)."""
    bad = checked = tighter = 0
    for net, engine, lo, hi, lo_t, hi_t, c, splits, root in _cases(count):
        plain = engine.bound(lo_t, hi_t, c, splits)
        opt = engine.bound(lo_t, hi_t, c, splits, alpha_steps=steps)
        assert (opt.lower >= plain.lower - 1e-12).all(), "never looser than CROWN"
        warm = engine.bound(
            lo_t,
            hi_t,
            c,
            splits,
            alpha_steps=3,
            pre=root.pre,
            alphas=opt.alphas,
            betas=opt.betas,
            refine=True,
        )
        for row in range(c.shape[0]):
            exact = mip_min_split(net, lo, hi, c[row].numpy(), [s[0].numpy() for s in splits])
            if exact is None:
                continue
            checked += 1
            worst = max(float(opt.lower[0, row]), float(warm.lower[0, row]))
            bad += worst > exact + TOL
            tighter += float(opt.lower[0, row]) > float(plain.lower[0, row]) + 1e-6
    return bad, checked, tighter


def test_optimised_split_bounds_never_exceed_the_exact_minimum():
    bad, checked, tighter = _violations(steps=20, count=8)
    assert checked >= 8
    assert bad == 0
    assert tighter >= checked // 4  # the optimiser does tighten (the test is not vacuous)


def test_alpha_bound_without_splits_is_sound_and_at_least_crown():
    for net, engine, lo, hi, lo_t, hi_t, c, _, root in _cases(6):
        opt = engine.bound(lo_t, hi_t, c, alpha_steps=20, alpha_intermediate=True)
        assert (opt.lower >= root.lower - 1e-12).all()
        for row in range(c.shape[0]):
            exact = mip_min_split(net, lo, hi, c[row].numpy(), [np.zeros(10)] * 3)
            assert float(opt.lower[0, row]) <= exact + TOL


def test_a_multiplier_with_the_wrong_sign_is_caught(monkeypatch):
    """Flip the sign of the split term (in the float64 pass and in the float32 iterations):
    the same check must find bounds above the minimum."""
    real = optimize.backward

    def flipped(ops, inputs, spec, trace, alphas=None, betas=None, signs=None):
        wrong = None if signs is None else tuple(-s for s in signs)
        return real(ops, inputs, spec, trace, alphas, betas, wrong)

    monkeypatch.setattr(optimize, "backward", flipped)
    real_fast = fc_fast.FcChain.lower

    def flipped_fast(self, lo, hi, spec, pre, alphas, betas, signs):
        wrong = None if signs is None else [-s for s in signs]
        return real_fast(self, lo, hi, spec, pre, alphas, betas, wrong)

    monkeypatch.setattr(fc_fast.FcChain, "lower", flipped_fast)
    bad, checked, _ = _violations(steps=20, count=8)
    assert bad > 0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_relu_search_verdicts_agree_with_the_exact_maximum(seed):
    """ReLU splitting with beta bounds against a threshold 2% of the output range either
    side of the exact maximum: `holds` exactly when the maximum is below it (attacks off, so
    every `holds` below is the bound's), `violated` with a point above it."""
    from threatlang.backends.bab.config import BabOptions
    from threatlang.backends.bab.confirm import Original
    from threatlang.backends.bab.problem import build_problem
    from threatlang.backends.bab.search import solve
    from threatlang.ir.properties import LinearConstraint, OutputsSatisfy

    from .helpers import mip_max

    net = random_net(seed + 20, (8, 12, 12, 12, 2))
    lo, hi = -np.ones(8) * 0.4, np.ones(8) * 0.4
    best = mip_max(net, lo, hi, [1.0, -1.0])
    low = -mip_max(net, lo, hi, [-1.0, 1.0])
    engine = EngineNet(net, (8,))
    for t, expect, pgd in (
        (best + 0.02 * (best - low), "holds", 0),
        (best - 0.02 * (best - low), "violated", 50),
    ):
        prop = OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", t))
        problem = build_problem(prop, engine.outputs)
        opts = BabOptions(time_limit=60, branching="relu", pgd_steps=pgd)
        out = solve(engine, problem, Original((8,), module=net), lo, hi, opts)
        assert out.verdict == expect, (t, best, out)
        if expect == "violated":
            y = net(torch.tensor(out.counterexample["input"], dtype=torch.float32)[None])
            assert float(y[0, 0] - y[0, 1]) > t - 1e-5
