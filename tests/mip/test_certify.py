"""Soundness of the certified regret: it is >= the regret of a dense grid search over the
misreport support and equal to it within the grid's resolution; it is >= PGD regret; the MIP's
allocation, payment and utility at the optimum match the network's forward pass to 1e-5."""

import importlib.util

import numpy as np
import pytest
import torch

from threatlang.backends.mip.certify import CertifyConfig, certify_agent
from threatlang.backends.mip.formulation import formulate
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig, PaymentKind, utilities
from threatlang.backends.mip.regret import AttackConfig, empirical_regret
from threatlang.backends.mip.solvers import SolverKind
from threatlang.backends.mip.valuations import SupportBox, sample_profiles

GRID = 201


def _mech(agents: int, hidden: tuple[int, ...], payment: PaymentKind, seed: int) -> Mechanism:
    mech = Mechanism(
        MechanismConfig(agents, 2, hidden, payment=payment),
        generator=torch.Generator().manual_seed(seed),
    )
    mech.clip_payments = payment is PaymentKind.FREE
    return mech.double().eval()


def _grid_regret(mech: Mechanism, profile: np.ndarray, agent: int) -> float:
    """Max utility over a GRID x GRID lattice of misreports, minus the truthful utility."""
    g = torch.linspace(0, 1, GRID, dtype=torch.float64)
    bids = torch.cartesian_prod(g, g)
    prof = torch.from_numpy(profile)
    profiles = prof.expand(len(bids), *prof.shape).clone()
    profiles[:, agent] = bids
    with torch.no_grad():
        u, _, _ = utilities(mech, profiles, prof.expand_as(profiles))
        truth, _, _ = utilities(mech, prof[None], prof[None])
    return float(u[:, agent].max() - truth[0, agent])


CASES = [
    (1, (8,), PaymentKind.FREE, SolverKind.HIGHS),
    (1, (8,), PaymentKind.FRACTIONAL, SolverKind.GUROBI),
    pytest.param(1, (8,), PaymentKind.FRACTIONAL, SolverKind.HIGHS, marks=pytest.mark.slow),
    (1, (8,), PaymentKind.FRACTIONAL, SolverKind.SCIP),
    (2, (8, 8), PaymentKind.FREE, SolverKind.GUROBI),
    pytest.param(2, (8, 8), PaymentKind.FRACTIONAL, SolverKind.GUROBI, marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("agents", "hidden", "payment", "solver"), CASES)
def test_certified_regret_matches_grid_search_and_bounds_pgd(
    agents, hidden, payment, solver
) -> None:
    if solver is not SolverKind.HIGHS:
        pytest.importorskip({SolverKind.GUROBI: "gurobipy", SolverKind.SCIP: "pyscipopt"}[solver])
    mech = _mech(agents, hidden, payment, seed=3)
    box = SupportBox(agents, 2)
    values = sample_profiles(box, 2, torch.Generator().manual_seed(0), dtype=torch.float64)
    pgd, _ = empirical_regret(
        mech, values, box, AttackConfig(50, 0.02, 2), torch.Generator().manual_seed(1)
    )
    cfg = CertifyConfig(solver=solver, time_limit=30.0, branch_gap=1e-5, max_boxes=2000)
    # the utility is Lipschitz in the misreport: a lattice point is within h/sqrt(2) of the optimum
    for k in range(len(values)):
        for agent in range(agents):
            profile = values[k].numpy()
            cert = certify_agent(mech, profile, agent, 0.0, 1.0, cfg)
            assert cert.certified_regret is not None, cert.reason
            grid = _grid_regret(mech, profile, agent)
            assert cert.certified_regret >= grid - 1e-7
            assert cert.certified_regret >= float(pgd[k, agent]) - 1e-7
            assert cert.certified_regret <= grid + 2e-3  # equal within the grid's resolution
            assert cert.residual <= 1e-5
            # the counterexample is real: the network gives it the regret we found
            assert cert.regret_found <= cert.certified_regret + 1e-7
            assert cert.regret_found >= cert.certified_regret - cfg.branch_gap - 1e-6


def test_time_limit_gives_no_certificate() -> None:
    mech = _mech(2, (64, 64), PaymentKind.FREE, seed=0)
    profile = np.array([[0.3, 0.7], [0.6, 0.2]])
    cert = certify_agent(
        mech, profile, 0, 0.0, 1.0, CertifyConfig(solver=SolverKind.HIGHS, time_limit=1e-3)
    )
    assert cert.certified_regret is None
    assert cert.reason and "time limit" in cert.reason
    assert cert.utility_bound >= cert.best_utility


def _over_licence():
    mech = _mech(1, (256,), PaymentKind.FRACTIONAL, seed=0)
    profile = np.array([[0.4, 0.9]])
    form = formulate(mech, profile, 0, np.zeros(2), np.ones(2))
    assert form.model.n > 200 and form.model.bilinear  # over the pip licence's quadratic limit
    return mech, profile


def test_auto_switches_off_a_too_small_licence_and_says_so() -> None:
    pytest.importorskip("gurobipy")
    mech, profile = _over_licence()
    cert = certify_agent(mech, profile, 0, 0.0, 1.0, CertifyConfig(time_limit=2.0))
    used = "scip" if importlib.util.find_spec("pyscipopt") else "highs"
    assert cert.solver == used
    assert cert.switch and "size-limited" in cert.switch and f"switched to {used}" in cert.switch


def test_explicit_gurobi_never_claims_a_switch() -> None:
    pytest.importorskip("gurobipy")
    from threatlang.backends.mip.solvers.gurobi import licence_is_limited

    if not licence_is_limited():
        pytest.skip("a full Gurobi licence takes the model")
    mech, profile = _over_licence()
    cfg = CertifyConfig(solver=SolverKind.GUROBI, time_limit=2.0)
    cert = certify_agent(mech, profile, 0, 0.0, 1.0, cfg)
    assert cert.certified_regret is None and cert.solver == "gurobi" and cert.switch is None
    assert "does not switch" in cert.reason and "switched" not in cert.reason
    assert "open-source" not in cert.reason


def test_scip_time_out_reports_an_infinite_bound_not_its_1e20() -> None:
    pytest.importorskip("pyscipopt")
    from threatlang.backends.mip.solvers import scip
    from threatlang.backends.mip.solvers.base import SolverOptions

    mech = _mech(2, (64, 64), PaymentKind.FRACTIONAL, seed=0)
    form = formulate(mech, np.array([[0.3, 0.7], [0.6, 0.2]]), 0, np.zeros(2), np.ones(2))
    res = scip.solve(form.model, SolverOptions(time_limit=1e-3))
    assert res.status.value in ("time_limit", "optimal")
    assert res.bound == float("inf") or abs(res.bound) < 1e10


def test_highs_prints_nothing_to_stdout() -> None:
    import subprocess
    import sys

    code = (
        "import numpy as np\n"
        "from threatlang.backends.mip.model import Expr, MipModel\n"
        "from threatlang.backends.mip.solvers import highs\n"
        "from threatlang.backends.mip.solvers.base import SolverOptions\n"
        "m = MipModel(); m.var(0, 1, integer=True)\n"
        "m.set_objective(Expr(np.ones((1, 1)), np.zeros(1)))\n"
        "assert highs.solve(m, SolverOptions()).objective == 1.0\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == ""


def test_a_zero_regret_never_reads_negative_zero() -> None:
    mech = _mech(1, (8,), PaymentKind.FREE, seed=3)
    for profile in (np.array([[0.0, 0.0]]), np.array([[1.0, 1.0]]), np.array([[0.3, 0.6]])):
        cert = certify_agent(mech, profile, 0, 0.0, 1.0, CertifyConfig(solver=SolverKind.HIGHS))
        assert cert.certified_regret is not None
        for value in (cert.certified_regret, cert.regret_upper_bound, cert.regret_found):
            assert value >= 0 and str(value) != "-0.0"


def test_numerical_disagreement_is_not_certified() -> None:
    mech = _mech(1, (8,), PaymentKind.FREE, seed=3)
    profile = np.array([[0.3, 0.6]])
    cfg = CertifyConfig(solver=SolverKind.HIGHS, residual_tol=-1.0)  # any residual is "trouble"
    cert = certify_agent(mech, profile, 0, 0.0, 1.0, cfg)
    assert cert.certified_regret is None and "numerical trouble" in cert.reason
