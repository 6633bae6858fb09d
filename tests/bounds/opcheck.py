"""Soundness checks shared by the per-op tests: an op's IBP box and its CROWN bounds, alone and
inside a small graph built directly from bound ops (Linear -> view -> op -> flatten -> Linear),
must contain the op's outputs at sampled points and corners of random input boxes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from threatlang.bounds import BackwardOptions, BoundGraph, BoundOp, Box, LowerSlope, Node
from threatlang.bounds.affine import BoundLinear, BoundReshape, LinearParams
from threatlang.bounds.crown import Method, bound_graph

TOL = 1e-5
SLOPES = (LowerSlope.ZERO, LowerSlope.ADAPTIVE)


def samples(lo: Tensor, hi: Tensor, n: int, gen: torch.Generator) -> Tensor:
    """(n, N, *shape): uniform points, random corners, and the two extreme corners."""
    u = torch.rand((n, *lo.shape), generator=gen, dtype=lo.dtype)
    corner = torch.randint(0, 2, (n, *lo.shape), generator=gen).to(lo.dtype)
    u = torch.where(torch.rand((n, *lo.shape), generator=gen) < 0.5, u, corner)
    u[0], u[1] = 0.0, 1.0
    return torch.minimum(lo + u * (hi - lo), hi)  # rounding may step past hi


def random_box(shape: Sequence[int], gen: torch.Generator, scale: float = 2.0) -> Box:
    """Boxes of mixed widths: some tiny, some wide, centred anywhere in ``[-scale, scale]``."""
    centre = (torch.rand(shape, generator=gen) * 2 - 1) * scale
    width = torch.rand(shape, generator=gen) * scale
    width = torch.where(torch.rand(shape, generator=gen) < 0.1, width * 1e-7, width)
    return Box(centre, width)


def check_interval(op: BoundOp, box: Box, gen: torch.Generator, n: int = 400) -> None:
    """The op's IBP box contains its output at every sample of ``box``."""
    out = op.interval(box)
    xs = samples(box.lo, box.hi, n, gen)
    ys = op.forward(xs.reshape(-1, *xs.shape[2:])).reshape(n, *out.centre.shape)
    assert bool((out.radius >= 0).all())
    assert bool((ys >= out.lo - TOL).all()), (ys - out.lo).min()
    assert bool((ys <= out.hi + TOL).all()), (ys - out.hi).max()


def single(op: BoundOp) -> BoundGraph:
    return BoundGraph([Node(None, (), "x"), Node(op, (0,), "op")])


def sandwich(
    op: BoundOp, shape: Sequence[int], gen: torch.Generator, d_in: int = 3, d_out: int = 4
) -> BoundGraph:
    """``d_in`` -> Linear -> view as ``shape`` -> op -> flatten -> Linear -> ``d_out`` (the
    flatten a reshape, so that an op may return one number per row)."""
    hidden = math.prod(shape)
    w1, b1 = torch.randn(hidden, d_in, generator=gen), torch.randn(hidden, generator=gen)
    view = BoundReshape(lambda x, _: x.reshape(x.shape[0], *shape), ())
    probe = op.forward(torch.zeros(1, *shape))
    w2 = torch.randn(d_out, probe[0].numel(), generator=gen) / math.sqrt(probe[0].numel())
    b2 = torch.randn(d_out, generator=gen)
    return BoundGraph(
        [
            Node(None, (), "x"),
            Node(BoundLinear(LinearParams(w1, b1)), (0,), "l1"),
            Node(view, (1,), "view"),
            Node(op, (2,), "op"),
            Node(BoundReshape(lambda x, _: x.reshape(x.shape[0], -1), ()), (3,), "flatten"),
            Node(BoundLinear(LinearParams(w2, b2)), (4,), "l2"),
        ]
    )


def check_graph(
    graph: BoundGraph, box: Box, gen: torch.Generator, n: int = 600
) -> dict[tuple[Method, LowerSlope], tuple[Tensor, Tensor]]:
    """Every method's bounds on every output contain the outputs at samples of ``box``;
    returns them by (method, slope)."""
    xs = samples(box.lo, box.hi, n, gen)
    with torch.no_grad():
        ys = graph.forward(xs.reshape(-1, *xs.shape[2:]))
        ys = ys.reshape(n, box.centre.shape[0], -1)
        found = {}
        for method in Method:
            for slope in SLOPES:
                res = bound_graph(graph, box.lo, box.hi, method, slope=slope, alpha_steps=5)
                lb, ub = res.lb, res.ub
                assert bool((lb <= ys.amin(0) + TOL).all()), (method, slope, lb - ys.amin(0))
                assert bool((ub >= ys.amax(0) - TOL).all()), (method, slope, ys.amax(0) - ub)
                found[(method, slope)] = (lb, ub)
    return found


def assert_no_looser(found: dict, better: Method, slope: LowerSlope, than: Method) -> None:
    lb, ub = found[(better, slope)]
    lb_ibp, ub_ibp = found[(than, LowerSlope.ZERO)]
    assert bool((lb >= lb_ibp - TOL).all()), (lb_ibp - lb).max()
    assert bool((ub <= ub_ibp + TOL).all()), (ub - ub_ibp).max()


def check_adjoint(op: BoundOp, shape: Sequence[int], gen: torch.Generator) -> None:
    """For an affine op: ``A . op(x) == A_in . x + bias`` at random points (back-substitution
    is the exact transpose), and its IBP box is exact on a point box."""
    n, s = 2, 3
    x = torch.randn(n, *shape, generator=gen, dtype=torch.float64)
    y = op.forward(x)
    a = torch.randn(n, s, *y.shape[1:], generator=gen, dtype=torch.float64)
    trace = {id(op): Box.point(x)}
    a_in, bias = op.backward(a, trace, BackwardOptions())
    assert a_in.shape == (n, s, *x.shape[1:])
    lhs = (a * y.unsqueeze(1)).reshape(n, s, -1).sum(2)
    rhs = (a_in * x.unsqueeze(1)).reshape(n, s, -1).sum(2) + bias
    torch.testing.assert_close(lhs, rhs, rtol=1e-9, atol=1e-9)
    point = op.interval(Box.point(x))
    torch.testing.assert_close(point.centre, y)
    assert float(point.radius.abs().max()) < 1e-12
