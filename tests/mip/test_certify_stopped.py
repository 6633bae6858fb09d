"""A per-profile certificate (Table 4.1) whose solve stopped at its time or node limit still
holds a sound upper bound: it is certified at that bound, marked not optimal, with its gap, and
its record is certified under a limit above the bound (issue 22)."""

import importlib.util

import attrs
import numpy as np
import pytest
import torch

from threatlang.backends.mip import certify as certify_module
from threatlang.backends.mip.certify import CertifyConfig, certify_agent
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig, PaymentKind
from threatlang.backends.mip.results import ItemAttack, certificate_record
from threatlang.backends.mip.solvers import SolverKind, SolveStatus
from threatlang.report import Status

HAS_SCIP = importlib.util.find_spec("pyscipopt") is not None
PROFILE = np.array([[0.6, 0.8]])


def _mech(payment: PaymentKind) -> Mechanism:
    gen = torch.Generator().manual_seed(4)
    mech = Mechanism(MechanismConfig(1, 2, (8,), payment=payment), generator=gen)
    mech.clip_payments = payment is PaymentKind.FREE
    return mech.double().eval()


@pytest.mark.skipif(not HAS_SCIP, reason="no pyscipopt")
def test_a_solve_stopped_at_its_time_limit_is_certified_at_its_bound(monkeypatch) -> None:
    mech = _mech(PaymentKind.FRACTIONAL)
    cfg = CertifyConfig(solver=SolverKind.SCIP, time_limit=60)
    exact = certify_agent(mech, PROFILE, 0, 0.0, 1.0, cfg)
    assert exact.optimal and exact.certified_regret is not None
    real_solve = certify_module.solve
    slack = 0.01

    def stopped(model, kind, options, limited):  # the same solve, reported as stopped early
        res, why = real_solve(model, kind, options, limited)
        return attrs.evolve(res, status=SolveStatus.TIME_LIMIT, bound=res.bound + slack), why

    monkeypatch.setattr(certify_module, "solve", stopped)
    cert = certify_agent(mech, PROFILE, 0, 0.0, 1.0, cfg)
    assert cert.certified_regret == pytest.approx(exact.certified_regret + slack, abs=1e-6)
    assert not cert.optimal and cert.stats["optimal"] is False
    assert cert.gap == pytest.approx(slack, abs=1e-6) and "gap" in cert.reason
    attack = ItemAttack(0.0, 0.0, PROFILE[0])
    above = certificate_record("r", PROFILE, cert, attack, cert.certified_regret + 1e-3)
    assert above.status is Status.CERTIFIED and above.values["regret_gap"] > 0
    below = certificate_record("r", PROFILE, cert, attack, exact.certified_regret + slack / 2)
    assert below.status is Status.UNKNOWN  # the open gap straddles the limit


def test_a_spatial_search_stopped_at_its_node_limit_keeps_a_sound_bound() -> None:
    """HiGHS relaxes the bilinear payment; one box only: the search stops with the gap open."""
    mech = _mech(PaymentKind.FRACTIONAL)
    closed = certify_agent(mech, PROFILE, 0, 0.0, 1.0, CertifyConfig(SolverKind.HIGHS))
    stopped = certify_agent(
        mech, PROFILE, 0, 0.0, 1.0, CertifyConfig(SolverKind.HIGHS, max_boxes=1)
    )
    assert closed.optimal and closed.certified_regret is not None
    if stopped.optimal:  # the root relaxation happened to be exact: nothing to test here
        pytest.skip("the relaxation closed at the root")
    assert stopped.certified_regret is not None, stopped.reason
    assert stopped.certified_regret >= closed.certified_regret - 1e-7
    assert stopped.gap > 0


def test_no_finite_bound_is_still_not_certified(monkeypatch) -> None:
    mech = _mech(PaymentKind.FREE)
    real_solve = certify_module.solve

    def nothing(model, kind, options, limited):
        res, why = real_solve(model, kind, options, limited)
        return attrs.evolve(res, status=SolveStatus.TIME_LIMIT, bound=float("inf")), why

    monkeypatch.setattr(certify_module, "solve", nothing)
    cert = certify_agent(mech, PROFILE, 0, 0.0, 1.0, CertifyConfig(SolverKind.HIGHS))
    assert cert.certified_regret is None and not cert.optimal
