"""The whole-support search's bounding step, cell by cell, against a dense grid: the bound of
every cell is never below the grid's max regret in it (true values on a grid of the cell, every
misreport on a grid of the support). The same check catches deliberately broken bound steps."""

import importlib.util

import numpy as np
import pytest
import torch

from threatlang.backends.mip import support as support_module
from threatlang.backends.mip.certify import CertifyConfig
from threatlang.backends.mip.corners import corner_model, truthful_utility
from threatlang.backends.mip.formulation import float_layers
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig, PaymentKind
from threatlang.backends.mip.regret import AttackConfig
from threatlang.backends.mip.solvers import SolverKind, SolverOptions, solve
from threatlang.backends.mip.support import (
    Cell,
    CellBound,
    SupportSearch,
    cell_regret_bound,
    regret_at_points,
)
from threatlang.backends.mip.train import TrainConfig, train_mechanism
from threatlang.backends.mip.valuations import SupportBox

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pyscipopt") is None, reason="no pyscipopt"
)
CFG = CertifyConfig(SolverKind.SCIP, time_limit=120)


def _trained(agents: int, hidden: tuple[int, ...]) -> Mechanism:
    gen = torch.Generator().manual_seed(0)
    mech = Mechanism(
        MechanismConfig(agents, 2, hidden, payment=PaymentKind.FRACTIONAL), generator=gen
    )
    cfg = TrainConfig(steps=60, batch_size=128, lr=5e-3, attack=AttackConfig(3, 0.05, 1))
    train_mechanism(mech, SupportBox(agents, 2), cfg, gen)
    return mech.double().eval()


def _cell(v_lo, v_hi, o_lo=(), o_hi=()) -> Cell:
    o_lo, o_hi = np.array(o_lo, float).reshape(-1, 2), np.array(o_hi, float).reshape(-1, 2)
    v_lo, v_hi = np.array(v_lo, float), np.array(v_hi, float)
    return Cell(v_lo, v_hi, np.zeros(2), np.ones(2), o_lo, o_hi)


def _grid_max(mech: Mechanism, cell: Cell, per_side: int, bids: int) -> float:
    """max regret over true values (and other bids) on a grid of the cell, misreports on a
    ``bids`` x ``bids`` grid of the support."""
    axes = [
        np.linspace(a, b, per_side) for a, b in zip(cell.values_lo, cell.values_hi, strict=True)
    ]
    for a, b in zip(cell.others_lo.reshape(-1), cell.others_hi.reshape(-1), strict=True):
        axes.append(np.linspace(a, b, 3))
    pts = torch.from_numpy(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes)))
    g = torch.linspace(0, 1, bids, dtype=torch.float64)
    misreports = torch.cartesian_prod(g, g)
    best = -np.inf
    for p in pts:
        n = len(misreports)
        v = p[:2].expand(n, 2)
        o = p[2:].reshape(1, -1, 2).expand(n, -1, 2)
        best = max(best, float(regret_at_points(mech, 0, v, misreports, o).max()))
    return best


def _violations(bound_fn, mech: Mechanism, cells, per_side=9, bids=61) -> list:
    out = []
    for cell in cells:
        bound, grid = bound_fn(cell), _grid_max(mech, cell, per_side, bids)
        if not bound >= grid - 1e-7:
            out.append((cell.values_lo.tolist(), cell.values_hi.tolist(), bound, grid))
    return out


@pytest.fixture(scope="module")
def one_bidder() -> Mechanism:
    return _trained(1, (12,))


ONE_BIDDER_CELLS = [
    _cell([0, 0], [1, 1]),
    _cell([0.5, 0.5], [1, 1]),
    _cell([0, 0.5], [0.5, 1]),
    _cell([0.25, 0.75], [0.375, 0.875]),
    _cell([0.6, 0.1], [0.7, 0.2]),
    _cell([0.0, 0.2], [0.2, 0.35]),  # a local max of the regret inside an edge, not at a corner
    _cell([0.9, 0.1], [1.0, 0.25]),
]


@pytest.mark.parametrize(
    "method", [CellBound.CORNERS, pytest.param(CellBound.JOINT, marks=pytest.mark.slow)]
)
def test_every_cell_bound_covers_the_grid(one_bidder, method) -> None:
    search = SupportSearch(method=method, joint_width=0.0)

    def bound(cell):
        return cell_regret_bound(one_bidder, 0, 0.0, 1.0, cell, CFG, search)

    assert _violations(bound, one_bidder, ONE_BIDDER_CELLS) == []


@pytest.mark.slow
def test_two_bidder_cell_bounds_cover_the_grid() -> None:
    mech = _trained(2, (8,))
    cells = [
        _cell([0, 0], [1, 1], [0, 0], [1, 1]),
        _cell([0.5, 0], [1, 0.5], [0.25, 0.5], [0.5, 0.75]),
        _cell([0.1, 0.6], [0.2, 0.7], [0.6, 0.1], [0.7, 0.2]),
    ]
    search = SupportSearch(joint_width=0.0)

    def bound(cell):
        return cell_regret_bound(mech, 0, 0.0, 1.0, cell, CFG, search)

    assert _violations(bound, mech, cells, per_side=5, bids=31) == []


def _exact_corner(mech: Mechanism, c: np.ndarray) -> float:
    cp, _ = corner_model(
        mech, float_layers(mech), 0, c, 0.0, 1.0, np.zeros((0, 2)), np.zeros((0, 2)),
        np.zeros(0), CFG.bounds,
    )  # fmt: skip
    res, _ = solve(cp.model, SolverKind.SCIP, SolverOptions(time_limit=60))
    return res.bound


def test_the_grid_check_catches_a_bound_taken_at_the_corners_only(one_bidder) -> None:
    """Regret is not convex in the values: its max over a cell is not at a corner. A bound
    step that assumed it would be unsound, and the grid check must say so."""

    def corners_only(cell):
        out = -np.inf
        for c in np.array(np.meshgrid(*zip(cell.values_lo, cell.values_hi, strict=True))).T.reshape(
            -1, 2
        ):
            u_t = truthful_utility(one_bidder, 0, c[None], np.zeros((1, 0, 2)))[0]
            out = max(out, _exact_corner(one_bidder, c) - u_t)
        return out

    assert _violations(corners_only, one_bidder, ONE_BIDDER_CELLS[-2:])  # the edge maxima


def test_the_grid_check_catches_corners_without_the_misreport(one_bidder, monkeypatch) -> None:
    """A corner "bound" that forgets the misreport (the truthful utility at the corner instead
    of the menu's best) breaks the convexity step's premise: caught."""

    def truthful_corner(self, c, cell, h):
        return float(truthful_utility(self.mech, self.agent, c[None], np.zeros((1, 0, 2)))[0])

    monkeypatch.setattr(support_module._Search, "_corner", truthful_corner)

    def bound(cell):
        return cell_regret_bound(one_bidder, 0, 0.0, 1.0, cell, CFG, SupportSearch(joint_width=0))

    assert _violations(bound, one_bidder, ONE_BIDDER_CELLS)
