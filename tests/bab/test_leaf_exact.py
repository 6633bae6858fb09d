"""Exact LP leaves are only for networks that are affine once their ReLU phases are fixed: a
max pool (or a sigmoid) is not, and its linear pieces at x = 0 are not the network on the
leaf, so an LP over them could close a term that a point of the leaf reaches (issue 20,
found on VNN-COMP's verivital max-pool CNN)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("highspy")

from torch import nn  # noqa: E402

from threatlang.backends.bab import leaf  # noqa: E402
from threatlang.backends.bab.adapter import EngineNet  # noqa: E402
from threatlang.backends.bab.problem import Problem  # noqa: E402

BIAS = (0.3, 0.2, 0.1, 0.0)  # at x = 0 the first pixel is the largest: the pool's piece there
LO = np.array([0.0, 0.0, 0.0, 0.0])
HI = np.array([0.1, 1.0, 1.0, 1.0])  # every pre-activation x + bias >= 0: all ReLUs active


def _net(pool: nn.Module) -> EngineNet:
    first = nn.Linear(4, 4)
    last = nn.Linear(1, 1)
    with torch.no_grad():
        first.weight.copy_(torch.eye(4))
        first.bias.copy_(torch.tensor(BIAS))
        last.weight.fill_(1.0)
        last.bias.zero_()
    model = nn.Sequential(first, nn.ReLU(), nn.Unflatten(1, (1, 2, 2)), pool, nn.Flatten(), last)
    return EngineNet(model.eval(), (4,))


def _unsafe_above(t: float) -> Problem:
    """A counterexample is y >= t (one term, one atom -y <= -t)."""
    return Problem(np.array([[-1.0]]), np.array([-t]), np.array([False]), np.array([[True]]))


def _decide(net: EngineNet, t: float) -> bool:
    masks = [np.ones(4)]
    closed, _ = leaf.decide(net, _unsafe_above(t), masks, np.ones(4), LO, HI, np.array([True]))
    return bool(closed[0])


def test_a_max_pool_leaf_is_never_closed_by_an_lp():
    net = _net(nn.MaxPool2d(2))
    assert not leaf.exact_for(net)
    x = torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    assert float(net(x)[0, 0]) >= 0.9  # the leaf reaches the unsafe set...
    assert not _decide(net, 0.9)  # ...so 0.9 must stay open (the pieces at 0 say y <= 0.4)


def test_an_avg_pool_leaf_is_decided_by_its_lp():
    net = _net(nn.AvgPool2d(2))
    assert leaf.exact_for(net)
    top = (HI + np.array(BIAS)).mean()  # the network's maximum on the leaf
    assert _decide(net, top + 0.01)  # nothing reaches above the maximum: closed
    assert not _decide(net, top - 0.01)  # a point of the leaf does: open
