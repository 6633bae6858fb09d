"""The lean chain engine for input splitting: the collapsed chain computes what the network
computes, its bounds are sound (never above a sampled minimum), exact where every ReLU is
stable, and networks that are not chains of affine maps and ReLUs are left to the general
engine."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from threatlang.backends.bab.adapter import EngineNet  # noqa: E402
from threatlang.backends.bab.chain import ReluChain  # noqa: E402

from .helpers import mip_max, random_net  # noqa: E402


def _boxes(d: int, n: int, seed: int, scale: float):
    gen = torch.Generator().manual_seed(seed)
    lo = torch.rand(n, d, generator=gen, dtype=torch.float64) * 2 - 1
    hi = lo + scale * torch.rand(n, d, generator=gen, dtype=torch.float64)
    return lo, hi


def _sampled_min(chain, c, lo, hi, k=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    n, d = lo.shape
    x = lo[:, None] + (hi - lo)[:, None] * torch.rand(n, k, d, generator=gen, dtype=torch.float64)
    corners = torch.where(torch.rand(n, k, d, generator=gen) < 0.5, lo[:, None], hi[:, None])
    x = torch.cat([x, corners], 1)
    y = chain(x.reshape(-1, d)).reshape(n, 2 * k, -1) @ c.T
    return y.amin(1)


def test_the_chain_computes_the_network():
    net = random_net(3, (5, 20, 20, 20, 4))
    engine = EngineNet(net, (5,))
    chain = ReluChain.of(engine)
    assert chain is not None and chain.relu_sizes == (20, 20, 20)
    x = torch.randn(32, 5, dtype=torch.float64)
    with torch.no_grad():
        want = net.double()(x)
    assert torch.allclose(chain(x), want, atol=1e-12)


@pytest.mark.parametrize("scale", [2.0, 0.3, 0.02])
def test_bounds_are_sound_and_as_tight_as_the_engine_on_big_boxes(scale):
    net = random_net(1, (5, 24, 24, 24, 3))
    engine = EngineNet(net, (5,))
    chain = ReluChain.of(engine)
    c = torch.tensor([[1.0, -1.0, 0.0], [0.0, 1.0, -1.0]], dtype=torch.float64)
    lo, hi = _boxes(5, 64, 7, scale)
    b = chain.bound(lo, hi, c)
    assert bool((b.lower <= _sampled_min(chain, c, lo, hi) + 1e-9).all())
    # the linear bound itself is a valid lower bound at sampled points
    gen = torch.Generator().manual_seed(2)
    x = lo + (hi - lo) * torch.rand(lo.shape, generator=gen, dtype=torch.float64)
    linear = (b.a_in * x[:, None]).sum(2) + b.bias
    assert bool((linear <= chain(x) @ c.T + 1e-9).all())
    if scale == 2.0:  # most neurons unstable: every row by CROWN, the engine's relaxation
        e = engine.bound(lo, hi, c)
        assert bool((b.lower >= e.lower - 1e-6 * e.lower.abs().clamp(min=1)).all())


def test_stable_boxes_are_bounded_exactly():
    net = random_net(2, (5, 16, 16, 2))
    chain = ReluChain.of(EngineNet(net, (5,)))
    c = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    lo, hi = _boxes(5, 200, 3, 1e-3)
    b = chain.bound(lo, hi, c)
    assert bool(b.stable.any())
    s = b.stable
    corner = torch.where(b.a_in[s, 0] > 0, lo[s], hi[s])
    at_corner = (chain(corner) @ c.T)[:, 0]
    assert torch.allclose(b.lower[s, 0], at_corner, atol=1e-9)


def test_other_networks_are_not_chains():
    class Skip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(3, 3), torch.nn.Linear(3, 2)

        def forward(self, x):
            return self.b(torch.relu(self.a(x)) + x)

    assert ReluChain.of(EngineNet(Skip().eval(), (3,))) is None
    sig = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Sigmoid(), torch.nn.Linear(4, 2))
    assert ReluChain.of(EngineNet(sig.eval(), (3,))) is None


def test_affine_decision_agrees_with_sampling():
    """A conjunction of atoms on a box where the net is affine: the LP's infeasible matches no
    sampled point satisfying every atom, and a feasible answer's point satisfies them."""
    from threatlang.backends.bab.input_split import affine_point

    rng = np.random.default_rng(0)
    for _ in range(40):
        a = rng.normal(size=(3, 4))
        c = rng.normal(size=3)
        s = rng.normal(size=3)
        lo, hi = -np.ones(4), np.ones(4)
        ok, x = affine_point(a, c, s, lo, hi)
        pts = rng.uniform(-1, 1, size=(20000, 4))
        sampled = bool(((pts @ a.T + c) <= s).all(1).any())
        if sampled:
            assert ok
        if ok and x is not None:
            assert ((a @ x + c) <= s + 1e-5).all() and (x >= lo - 1e-9).all()
        if not ok:
            assert not sampled


def test_few_unstable_relus_decided_exactly_agree_with_the_mip():
    """Boxes with 1-3 unstable ReLUs: one LP per phase pattern decides `y0 - y1 <= t` exactly:
    a threshold just above the MIP maximum closes, one just below yields a violating point."""
    from threatlang.backends.bab.input_split import few_unstable_decide
    from threatlang.backends.bab.problem import build_problem
    from threatlang.ir.properties import LinearConstraint, OutputsSatisfy

    net = random_net(5, (3, 12, 12, 2))
    chain = ReluChain.of(EngineNet(net, (3,)))
    c = torch.tensor([[1.0, -1.0]], dtype=torch.float64)
    lo, hi = _boxes(3, 400, 11, 0.15)
    b = chain.bound(lo, hi, c)
    count = sum(((low < 0) & (up > 0)).sum(1) for low, up in b.pre)
    picked = torch.nonzero((count >= 1) & (count <= 3)).flatten()[:6]
    assert len(picked) >= 3
    for i in picked.tolist():
        box = (lo[i].numpy(), hi[i].numpy())
        best = mip_max(net.double(), *box, [1.0, -1.0])
        pre = tuple((low[i], up[i]) for low, up in b.pre)
        for t, closes in ((best + 1e-4, True), (best - 1e-4, False)):
            problem = build_problem(OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", t)), 2)
            closed, points = few_unstable_decide(chain, problem, pre, *box, np.ones(1, bool))
            assert bool(closed[0]) == closes, (i, t, best)
            if not closes:
                y = chain(torch.from_numpy(np.stack(points)))
                assert bool(((y @ c.T)[:, 0] > t - 1e-5).any())


@pytest.mark.parametrize("seed", [0, 1])
def test_alpha_on_every_domain_keeps_verdicts_exact(seed, monkeypatch):
    """With alpha-CROWN applied from the root down (`ALPHA_DEPTH` 0), verdicts still match
    the MIP maximum 2% either side, and a proof is never claimed below it."""
    from threatlang.backends.bab import input_split
    from threatlang.backends.bab.config import BabOptions
    from threatlang.backends.bab.confirm import Original
    from threatlang.backends.bab.problem import build_problem
    from threatlang.backends.bab.search import solve
    from threatlang.ir.properties import LinearConstraint, OutputsSatisfy

    monkeypatch.setattr(input_split, "ALPHA_DEPTH", 0)
    net = random_net(seed, (2, 16, 16, 2))
    lo, hi = -np.ones(2), np.ones(2)
    best = mip_max(net, lo, hi, [1.0, -1.0])
    spread = best + mip_max(net, lo, hi, [-1.0, 1.0])
    engine = EngineNet(net, (2,))
    for t, expect in ((best + 0.02 * spread, "holds"), (best - 0.02 * spread, "violated")):
        problem = build_problem(OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", t)), 2)
        out = solve(engine, problem, Original((2,), module=net), lo, hi, BabOptions(time_limit=60))
        assert out.verdict == expect, (t, best, out)
