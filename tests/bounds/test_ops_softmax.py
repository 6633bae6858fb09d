"""Softmax / log-softmax: the interval is the exact coordinate-wise image of a box (contains
every sampled output, attained at the extreme corners), CROWN through a captured model ending in
softmax contains the model's outputs, and a model ending in softmax gets certificates."""

from __future__ import annotations

import collections

import pytest
import torch
from torch import nn

import threatlang
from threatlang import ir
from threatlang.bounds import Box
from threatlang.bounds.softmax import BoundSoftmax

from .opcheck import check_graph, check_interval, random_box, sandwich


@pytest.mark.parametrize("log", [False, True])
@pytest.mark.parametrize("dim", [1, -1, 2])
def test_interval_contains_samples(log: bool, dim: int) -> None:
    gen = torch.Generator().manual_seed(3)
    op = BoundSoftmax(dim, log)
    for scale in (0.5, 3.0, 40.0):  # 40: exp overflows without the shift
        check_interval(op, random_box((5, 4, 6), gen, scale), gen)


@pytest.mark.parametrize("log", [False, True])
def test_interval_is_attained_at_the_extreme_corners(log: bool) -> None:
    gen = torch.Generator().manual_seed(4)
    box = random_box((3, 7), gen, 4.0)
    out = BoundSoftmax(1, log).interval(box)
    f = (lambda z: torch.log_softmax(z, 1)) if log else (lambda z: torch.softmax(z, 1))
    for i in range(7):
        low_corner = box.hi.clone()
        low_corner[:, i] = box.lo[:, i]
        high_corner = box.lo.clone()
        high_corner[:, i] = box.hi[:, i]
        torch.testing.assert_close(out.lo[:, i], f(low_corner)[:, i], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out.hi[:, i], f(high_corner)[:, i], rtol=1e-5, atol=1e-6)


def test_a_dominant_logit_keeps_the_others_bounds_tight() -> None:
    """Where one logit dominates, the sums over the others must not cancel to a wrong bound:
    float32 bounds match the float64 values at the extreme corners."""
    lo = torch.tensor([[30.0, 0.0, -1.0, 29.5]])
    hi = lo + 1e-3
    out = BoundSoftmax(1, True).interval(Box.from_bounds(lo, hi))
    for i in range(4):
        corner = hi.double().clone()
        corner[0, i] = lo[0, i]
        exact = torch.log_softmax(corner, 1)[0, i]
        assert float(out.lo[0, i]) <= float(exact) + 1e-5
        assert float(out.lo[0, i]) > float(exact) - 1e-4


@pytest.mark.parametrize("log", [False, True])
def test_every_method_contains_the_outputs_through_softmax(log: bool) -> None:
    gen = torch.Generator().manual_seed(5)
    graph = sandwich(BoundSoftmax(1, log), (5,), gen)
    check_graph(graph, random_box((4, 3), gen, 1.0), gen)


class SoftmaxNet(nn.Module):
    def __init__(self, log: bool) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 3))
        self.log = log

    def forward(self, x):
        z = self.body(x)
        return torch.log_softmax(z, dim=1) if self.log else torch.softmax(z, dim=-1)


@pytest.mark.parametrize("log", [False, True])
def test_a_model_ending_in_softmax_is_certified_and_attacked(log: bool, tmp_path) -> None:
    torch.manual_seed(0)
    model = SoftmaxNet(log).eval()
    with torch.no_grad():
        model.body[3].weight *= 4
    x = torch.rand(24, 1, 4, 4)
    y = model(x).argmax(1)
    spec = ir.Spec(
        name="soft",
        threat=ir.LpBall("input", "linf", [0.002]),
        require=ir.LabelUnchanged(),
        actions=[ir.Certify("crown")],
        seed=0,
    )
    result = threatlang.run(spec, model=model, data=(x, y), output=tmp_path, quiet=True)
    statuses = collections.Counter(r.status.value for r in result.records)
    assert statuses["certified"] > 0, statuses
    assert result.summary.metrics["soundness_violations"] == 0
    # every certified point is attacked: no point of the ball changes the label
    for r in result.records:
        if r.status.value != "certified":
            continue
        i = int(r.id.rsplit("-", 1)[-1])
        noise = (torch.rand(256, 1, 4, 4) * 2 - 1) * 0.002
        assert bool((model(x[i] + noise).argmax(1) == y[i]).all())
