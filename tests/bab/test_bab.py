"""Branch and bound never claims `holds` where a counterexample exists: verdicts against exact
MIP maxima and dense grids on constructed and trained networks, both branching modes; every
reported counterexample lies in the box and violates the property on the original model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("highspy")

from threatlang.backends.bab.adapter import EngineNet  # noqa: E402
from threatlang.backends.bab.config import BabOptions  # noqa: E402
from threatlang.backends.bab.confirm import Original  # noqa: E402
from threatlang.backends.bab.problem import build_problem  # noqa: E402
from threatlang.backends.bab.search import solve  # noqa: E402
from threatlang.ir.properties import (  # noqa: E402
    Disjunction,
    LinearConstraint,
    OutputsSatisfy,
)

from .helpers import grid_outputs, holds, mip_max, random_net, trained_net  # noqa: E402


def _solve(net, prop, lo, hi, **opts):
    shape = (len(lo),)
    engine = EngineNet(net, shape)
    problem = build_problem(prop, engine.outputs)
    options = BabOptions(**{"time_limit": 60.0, **opts})
    return solve(engine, problem, Original(shape, module=net), lo, hi, options)


def _check_counterexample(net, prop, out, lo, hi):
    x = np.asarray(out.counterexample["input"])
    assert (x >= lo).all() and (x <= hi).all()
    with torch.no_grad():
        y = net(torch.tensor(x, dtype=torch.float32)[None])[0].double().numpy()
    assert not holds(prop.formula, y)


@pytest.mark.parametrize("branching", ["input", "auto"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_verdicts_match_the_exact_maximum(seed, branching):
    """`y0 - y1 <= t` holds iff t >= the MIP maximum; a margin of 2% of the output range
    either side must be decided correctly."""
    net = random_net(seed)
    lo, hi = -np.ones(2), np.ones(2)
    best = mip_max(net, lo, hi, [1.0, -1.0])
    spread = best - (-mip_max(net, lo, hi, [-1.0, 1.0]))
    for t, expect in ((best + 0.02 * spread, "holds"), (best - 0.02 * spread, "violated")):
        prop = OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", t))
        out = _solve(net, prop, lo, hi, branching=branching)
        assert out.verdict == expect, (t, best, out)
        if expect == "violated":
            _check_counterexample(net, prop, out, lo, hi)


@pytest.mark.slow
def test_relu_splitting_in_ten_dimensions():
    """ReLU splitting (auto: 10 inputs > 4) with exact LPs on fully split leaves."""
    net = random_net(3, (10, 8, 8, 1))
    lo, hi = -np.ones(10) * 0.5, np.ones(10) * 0.5
    best = mip_max(net, lo, hi, [1.0])
    low = -mip_max(net, lo, hi, [-1.0])
    for t, expect in (
        (best + 0.1 * (best - low), "holds"),
        (best - 0.1 * (best - low), "violated"),
    ):
        prop = OutputsSatisfy(LinearConstraint((1.0,), "<", t))
        out = _solve(net, prop, lo, hi, branching="auto", input_split_max_dims=4)
        assert out.verdict == expect, (t, best, out)
        if expect == "violated":
            _check_counterexample(net, prop, out, lo, hi)


@pytest.mark.parametrize("seed", [0, 1])
def test_disjunctions_on_trained_nets_agree_with_a_grid(seed):
    """`any { y0 <= a; y2 >= b }` over boxes of a trained 3-output net: `holds` never where a
    grid point violates; `violated` only with a confirmed counterexample; both verdicts occur."""
    net = trained_net(seed)
    verdicts = []
    for lo, hi in ((-np.ones(2), np.ones(2)), (np.array([0.2, -0.6]), np.array([0.7, 0.1]))):
        y = grid_outputs(net, lo, hi)
        for qa, qb in ((0.9, 0.1), (0.995, 0.005), (1.0, 0.0), (0.6, 0.4)):
            a = float(np.quantile(y[:, 0], qa)) + 0.02
            b = float(np.quantile(y[:, 2], qb)) - 0.02
            prop = OutputsSatisfy(
                Disjunction(
                    (LinearConstraint((1.0,), "<=", a), LinearConstraint((0, 0, 1.0), ">=", b))
                )
            )
            out = _solve(net, prop, lo, hi, time_limit=30.0)
            grid_violated = any(not holds(prop.formula, row) for row in y)
            if out.verdict == "holds":
                assert not grid_violated
            else:
                assert out.verdict == "violated", out
                _check_counterexample(net, prop, out, lo, hi)
            verdicts.append(out.verdict)
    assert {"holds", "violated"} <= set(verdicts)


def test_time_limit_gives_timeout_with_reason():
    """At the limit the verdict is `unknown` (timed out) with the reason, never `holds`."""
    net = random_net(4, (2, 32, 32, 2))
    lo, hi = -np.ones(2), np.ones(2)
    y = grid_outputs(net, lo, hi, 101)
    prop = OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", float((y[:, 0] - y[:, 1]).max())))
    out = _solve(net, prop, lo, hi, time_limit=1e-6, pgd_steps=0)
    assert out.verdict == "unknown" and out.timed_out
    assert "time limit" in out.reason


def test_bound_alone_is_the_non_branching_verdict():
    net = random_net(0)
    lo, hi = -np.ones(2), np.ones(2)
    best = mip_max(net, lo, hi, [1.0, -1.0])
    loose = OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", best + 100.0))
    tight = OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", best + 0.01))
    assert _solve(net, loose, lo, hi).bound_alone == "holds"
    out = _solve(net, tight, lo, hi)
    assert out.bound_alone == "unknown" and out.verdict == "holds" and out.domains > 1
