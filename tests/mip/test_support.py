"""The support-wide certificate (one MIP per agent, true values, misreport and the other bids
all variables) against a dense grid over the whole support, on small trained networks: the
certified bound is never below the grid's max regret and within a small gap of it; a solve
stopped early still reports a sound bound, with its gap."""

import importlib.util

import numpy as np
import pytest
import torch

from threatlang.backends.mip.certify import CertifyConfig
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig, PaymentKind
from threatlang.backends.mip.regret import AttackConfig
from threatlang.backends.mip.results import support_record
from threatlang.backends.mip.solvers import SolverKind
from threatlang.backends.mip.support import SupportSearch, certify_support, regret_at_points
from threatlang.backends.mip.train import TrainConfig, train_mechanism
from threatlang.backends.mip.valuations import SupportBox
from threatlang.report import Status

HAS_SCIP = importlib.util.find_spec("pyscipopt") is not None


def _trained(agents: int, hidden: tuple[int, ...], payment: PaymentKind) -> Mechanism:
    gen = torch.Generator().manual_seed(0)
    mech = Mechanism(MechanismConfig(agents, 2, hidden, payment=payment), generator=gen)
    cfg = TrainConfig(steps=60, batch_size=128, lr=5e-3, attack=AttackConfig(3, 0.05, 1))
    train_mechanism(mech, SupportBox(agents, 2), cfg, gen)
    mech.clip_payments = payment is PaymentKind.FREE
    return mech.double().eval()


def _grid_max_one_bidder(mech: Mechanism, points: int) -> float:
    """max over a points^2 grid of true values of (best grid misreport - truthful utility)."""
    g = torch.linspace(0, 1, points, dtype=torch.float64)
    bids = torch.cartesian_prod(g, g)
    with torch.no_grad():
        alloc, pay = mech(bids[:, None, :])
    best = -np.inf
    for start in range(0, len(bids), 2048):
        v = bids[start : start + 2048]
        u = v @ alloc[:, 0, :].T - pay[:, 0]  # (V, G): every menu entry at every value
        truthful = u[torch.arange(len(v)), torch.arange(start, start + len(v))]
        best = max(best, float((u.max(dim=1).values - truthful).max()))
    return best


def _grid_max_two_bidders(mech: Mechanism, agent: int, points: int) -> float:
    g = torch.linspace(0, 1, points, dtype=torch.float64)
    pairs = torch.cartesian_prod(g, g)
    best = -np.inf
    for o in pairs:  # the other bidder's bids
        n = len(pairs)
        v = pairs.repeat_interleave(n, 0)
        b = pairs.repeat(n, 1)
        r = regret_at_points(mech, agent, v, b, o.expand(n * n, 1, 2))
        best = max(best, float(r.max()))
    return best


HAS_GUROBI = importlib.util.find_spec("gurobipy") is not None
NO_SCIP = pytest.mark.skipif(not HAS_SCIP, reason="no pyscipopt")
CASES = [
    pytest.param(SolverKind.SCIP, PaymentKind.FRACTIONAL, marks=NO_SCIP),
    pytest.param(SolverKind.SCIP, PaymentKind.FREE, marks=NO_SCIP),
    # auto: Gurobi where a cell's MIP fits the size-limited licence, SCIP where not
    pytest.param(
        SolverKind.AUTO,
        PaymentKind.FRACTIONAL,
        marks=pytest.mark.skipif(not (HAS_GUROBI and HAS_SCIP), reason="no gurobipy/pyscipopt"),
    ),
]
CASES.append(pytest.param(SolverKind.HIGHS, PaymentKind.FREE))
# HiGHS relaxes the fractional payment's products with the misreport: it converges, slowly
CASES.append(pytest.param(SolverKind.HIGHS, PaymentKind.FRACTIONAL, marks=pytest.mark.slow))


@pytest.mark.parametrize(("solver", "payment"), CASES)
def test_support_bound_covers_dense_grid_and_is_tight(solver, payment) -> None:
    mech = _trained(1, (12,), payment)
    grid_max = _grid_max_one_bidder(mech, 101)
    cfg = CertifyConfig(solver=solver, time_limit=600)
    cert = certify_support(mech, 0, 0.0, 1.0, cfg)
    assert cert.regret_bound is not None, cert.reason
    assert cert.optimal, cert.reason
    assert cert.regret_bound >= grid_max - 1e-7  # sound: never below a real regret
    assert cert.regret_bound - grid_max <= 5e-3  # tight: the grid's resolution, no more
    assert cert.regret_bound - cert.regret_found <= cfg.branch_gap + 1e-7
    w = cert.witness  # the incumbent is a real point of the support
    t = torch.from_numpy
    again = regret_at_points(mech, 0, t(w.values)[None], t(w.misreport)[None], t(w.others)[None])
    assert float(again[0]) == pytest.approx(cert.regret_found, abs=1e-9)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_SCIP, reason="no pyscipopt")
def test_two_bidders_support_bound_covers_grid() -> None:
    mech = _trained(2, (8,), PaymentKind.FRACTIONAL)
    for agent in (0, 1):
        cert = certify_support(
            mech, agent, 0.0, 1.0, CertifyConfig(SolverKind.SCIP, time_limit=300)
        )
        assert cert.regret_bound is not None, cert.reason
        grid_max = _grid_max_two_bidders(mech, agent, 13)
        assert cert.regret_bound >= grid_max - 1e-7
        assert cert.regret_bound >= cert.regret_found


@NO_SCIP
def test_stopped_solve_reports_its_bound_with_the_gap() -> None:
    mech = _trained(1, (12,), PaymentKind.FRACTIONAL)
    closed = certify_support(mech, 0, 0.0, 1.0, CertifyConfig(SolverKind.SCIP, time_limit=600))
    stopped = certify_support(  # stopped after the first cell: the first bound and its gap
        mech,
        0,
        0.0,
        1.0,
        CertifyConfig(SolverKind.HIGHS, time_limit=300),
        start=closed.witness,
        search=SupportSearch(max_cells=1),
    )
    assert not stopped.optimal
    assert stopped.regret_bound is not None and stopped.reason
    assert closed.optimal, closed.reason
    assert stopped.regret_bound >= closed.regret_bound - 1e-7  # still an upper bound
    assert stopped.gap > 0
    assert stopped.regret_found >= closed.regret_found > 0  # the attack's point is kept
    # the verdict: a bound under the limit certifies even with the gap open; one above it
    # with nothing found above the limit is unknown
    assert support_record("s", stopped, stopped.regret_bound + 1e-3).status is Status.CERTIFIED
    limit = (stopped.regret_bound + stopped.regret_found) / 2
    assert support_record("s", stopped, limit).status is Status.UNKNOWN
    below = stopped.regret_found / 2
    assert support_record("s", stopped, below).status is Status.FALSIFIED
