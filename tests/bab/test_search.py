"""The search's limits and attacks: the domain budget answers `unknown`, the deadline holds
within a second whatever the batch, PGD aims at every term of a disjunction, and strong input
branching closes a box that smear branching could not."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("highspy")

from threatlang.backends.bab import attack  # noqa: E402
from threatlang.backends.bab.adapter import EngineNet  # noqa: E402
from threatlang.backends.bab.config import BabOptions  # noqa: E402
from threatlang.backends.bab.confirm import Original  # noqa: E402
from threatlang.backends.bab.problem import build_problem  # noqa: E402
from threatlang.backends.bab.search import solve  # noqa: E402
from threatlang.ir.properties import (  # noqa: E402
    Conjunction,
    Disjunction,
    LinearConstraint,
    OutputsSatisfy,
)

from .helpers import grid_outputs, mip_max, random_net  # noqa: E402


def _solve(net, prop, lo, hi, **opts):
    shape = (len(lo),)
    engine = EngineNet(net, shape)
    problem = build_problem(prop, engine.outputs)
    return solve(engine, problem, Original(shape, module=net), lo, hi, BabOptions(**opts))


def _tight(net, lo, hi):
    """`y0 - y1 <= max + tiny`: holds, but only after much branching."""
    best = mip_max(net, lo, hi, [1.0, -1.0])
    return OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", best + 1e-6))


def test_domain_budget_answers_unknown_with_its_reason():
    net = random_net(4, (2, 32, 32, 2))
    lo, hi = -np.ones(2), np.ones(2)
    out = _solve(net, _tight(net, lo, hi), lo, hi, max_domains=1, pgd_steps=0)
    assert out.verdict == "unknown" and not out.timed_out
    assert "max_domains" in out.reason


@pytest.mark.parametrize("branching", ["input", "relu"])
def test_deadline_is_kept_within_a_second_whatever_the_batch(branching):
    """A batch far larger than a second's work is cut to the time left."""
    net = random_net(5, (2, 64, 64, 64, 2))
    lo, hi = -np.ones(2), np.ones(2)
    y = grid_outputs(net, lo, hi, 101)
    prop = OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", float((y[:, 0] - y[:, 1]).max())))
    limit = 1.0
    out = _solve(net, prop, lo, hi, time_limit=limit, batch=100_000, branching=branching)
    if out.verdict == "unknown":
        assert out.timed_out and "time limit" in out.reason
    assert out.seconds < limit + 1.0, out


def test_pgd_aims_at_every_term_of_a_disjunction():
    """y = x on [-1, 1]^2; the negation of `all { y0 <= 0.9; y1 >= -0.9 }` has two terms,
    reached at opposite edges: the whole-box attack returns a point inside each."""
    net = torch.nn.Sequential(torch.nn.Linear(2, 2)).double()
    with torch.no_grad():
        net[0].weight.copy_(torch.eye(2))
        net[0].bias.zero_()
    prop = OutputsSatisfy(
        Conjunction((LinearConstraint((1.0,), "<=", 0.9), LinearConstraint((0.0, 1.0), ">=", -0.9)))
    )
    engine = EngineNet(net, (2,))
    problem = build_problem(prop, engine.outputs)
    lo, hi = -torch.ones(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    points = attack.whole_box(engine, problem, lo, hi, 2, 10, torch.Generator().manual_seed(0))
    assert problem.terms == 2
    assert bool((points[:, 0] > 0.9).any()) and bool((points[:, 1] < -0.9).any())


def test_worst_corner_minimises_the_linear_bound():
    lo, hi = torch.zeros(3, 2, dtype=torch.float64), torch.ones(3, 2, dtype=torch.float64)
    a = torch.tensor([[1.0, -1.0], [-2.0, 3.0], [0.5, 0.5]], dtype=torch.float64)
    corner = attack.worst_corner(lo, hi, a)
    values = (a * corner).sum(1)
    grid = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float64)
    assert torch.allclose(values, (a @ grid.T).amin(1))


def test_or_of_ands_decided_exactly_on_fixed_leaves():
    """`neither output is the smallest`-style terms (ands of atoms) close only by LP once every
    ReLU is stable; the verdict matches a dense grid."""
    net = random_net(7, (2, 12, 12, 3))
    lo, hi = np.array([-0.5, -0.5]), np.array([0.5, 0.5])
    y = grid_outputs(net, lo, hi, 201)
    # unsafe when y0 is below both others: safe iff y0 >= min(y1, y2) everywhere
    gap = float((y[:, 0] - np.minimum(y[:, 1], y[:, 2])).min())
    for shift, expect in ((gap - 0.05, "holds"), (gap + 0.05, "violated")):
        prop = OutputsSatisfy(
            Disjunction(
                (
                    LinearConstraint((1.0, -1.0, 0.0), ">=", shift),
                    LinearConstraint((1.0, 0.0, -1.0), ">=", shift),
                )
            )
        )
        out = _solve(net, prop, lo, hi, time_limit=30.0)
        assert out.verdict == expect, (shift, out)
