"""The pieces of the corner bound (``corners.py``): the triangulation of a box of values, the
interpolant over each simplex, and the one-copy MIPs against the network."""

import itertools

import numpy as np
import pytest
import torch

from threatlang.backends.mip.bounds import BoundMethod
from threatlang.backends.mip.corners import corner_model, simplex_model, triangulation
from threatlang.backends.mip.formulation import float_layers
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig, utilities
from threatlang.backends.mip.solvers import SolverKind, SolverOptions, SolveStatus, solve


@pytest.mark.parametrize("items", [1, 2, 3])
@pytest.mark.parametrize("flipped", [False, True])
def test_simplices_cover_the_box_and_interpolate_the_corners(items, flipped) -> None:
    rng = np.random.default_rng(items)
    lo, hi = rng.random(items), None
    hi = lo + 0.1 + rng.random(items)
    flip = (False,) + (flipped,) * (items - 1)
    simplices = triangulation(items, flip)
    pts = lo + (hi - lo) * rng.random((2000, items))
    covered = np.zeros(len(pts), dtype=bool)
    for s in simplices:
        covered |= s.contains(lo, hi, pts)
    assert covered.all()
    corner_heights = {b: rng.normal() for b in itertools.product((False, True), repeat=items)}
    for s in simplices:
        bits = s.vertex_bits()
        assert len(set(bits)) == items + 1
        w, c = s.interpolant(lo, hi, [corner_heights[b] for b in bits])
        for b in bits:
            v = np.where(b, hi, lo)
            assert s.contains(lo, hi, v[None], tol=1e-9)[0]
            assert v @ w + c == pytest.approx(corner_heights[b], abs=1e-9)


def _net(agents: int) -> Mechanism:
    gen = torch.Generator().manual_seed(3)
    return Mechanism(MechanismConfig(agents, 2, (10,)), generator=gen).double().eval()


@pytest.mark.parametrize("agents", [1, 2])
def test_one_copy_mips_agree_with_the_network(agents) -> None:
    """The corner MIP's optimum is the network's best utility at the corner (never below a
    grid of misreports); the simplex MIP's optimum is its objective at the network's point."""
    mech = _net(agents)
    layers = float_layers(mech)
    o_lo, o_hi = np.full((agents - 1, 2), 0.25), np.full((agents - 1, 2), 0.5)
    h = np.full((agents - 1) * 2, 0.1)
    c = np.array([0.7, 0.4])
    cp, util = corner_model(mech, layers, 0, c, 0.0, 1.0, o_lo, o_hi, h, BoundMethod.LINEAR)
    res, _ = solve(cp.model, SolverKind.SCIP, SolverOptions(time_limit=60))
    assert res.status is SolveStatus.OPTIMAL
    g = torch.linspace(0, 1, 41, dtype=torch.float64)
    bids = torch.cartesian_prod(g, g)
    o = torch.full((len(bids), agents - 1, 2), 0.25, dtype=torch.float64)
    lie = torch.cat([bids[:, None], o], dim=1)
    truth = torch.cat([torch.from_numpy(c).expand(len(bids), 1, 2), o], dim=1)
    with torch.no_grad():
        u, _, _ = utilities(mech, lie, truth)
    grid = float((u[:, 0] - 0.25 * h.sum()).max())
    assert res.bound >= grid - 1e-7
    lo, hi = np.array([0.5, 0.25]), np.array([0.75, 0.5])
    simplex = triangulation(2, (False, True))[1]
    cp, u_t = simplex_model(
        mech, layers, 0, lo, hi, o_lo, o_hi, simplex, [0.3, 0.1, 0.2], h, BoundMethod.LINEAR
    )
    res, _ = solve(cp.model, SolverKind.SCIP, SolverOptions(time_limit=60))
    assert res.status is SolveStatus.OPTIMAL
    x = res.x
    v, oth = x[cp.own], x[cp.others]
    assert simplex.contains(lo, hi, v[None], tol=1e-7)[0]
    prof = torch.from_numpy(np.concatenate([v[None], oth]))[None]
    with torch.no_grad():
        ut, _, _ = utilities(mech, prof, prof)
    assert float(u_t.value(x)[0]) == pytest.approx(float(ut[0, 0]), abs=1e-6)
