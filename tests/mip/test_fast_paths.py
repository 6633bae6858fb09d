"""The trainer's fast paths compute exactly what they replace: the written-out utility gradient
and training-loss gradient (every payment and allocation kind, the regulariser, the menu
objective, distillation) against autograd, whole runs against the autograd path, Adam against
torch.optim.Adam, the small sparsemax against the sort-based one, closed-form interval bounds
against the bound engine, two-stage argmax against argmax."""

import pytest
import torch

from threatlang.backends.mip.adam import Adam
from threatlang.backends.mip.bounds import (
    interval_bounds,
    interval_bounds_direct,
    stability_penalty,
)
from threatlang.backends.mip.gradients import (
    forward,
    own_utilities,
    stability_and_grad,
    utility_and_grad,
)
from threatlang.backends.mip.mechanisms import (
    AllocationKind,
    Mechanism,
    MechanismConfig,
    PaymentKind,
)
from threatlang.backends.mip.menu import argmax_rows, grid_bids, grid_choice
from threatlang.backends.mip.regret import AttackConfig, deviation_utilities
from threatlang.backends.mip.sparsemax import sparsemax, sparsemax_sorted
from threatlang.backends.mip.train import (
    Multipliers,
    TrainConfig,
    train_mechanism,
    training_grads,
    training_loss,
)
from threatlang.backends.mip.valuations import SupportBox


@pytest.mark.parametrize("agents", [1, 2, 3])
@pytest.mark.parametrize("allocation", list(AllocationKind))
@pytest.mark.parametrize("payment", list(PaymentKind))
@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("hidden", [(16,), (16, 16)])
def test_utility_gradient_matches_autograd(agents, allocation, payment, clip, hidden) -> None:
    cfg = MechanismConfig(agents, 2, hidden, allocation, payment)
    mech = Mechanism(cfg, generator=torch.Generator().manual_seed(agents)).double()
    mech.clip_payments = clip
    gen = torch.Generator().manual_seed(7)
    values = torch.rand(3, 5, agents, 2, generator=gen, dtype=torch.float64)
    bids = torch.rand(3, 5, agents, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    u = deviation_utilities(mech, values, bids)
    (grad,) = torch.autograd.grad(u.sum(), bids)
    u_fast, grad_fast = utility_and_grad(mech, values, bids.detach())
    torch.testing.assert_close(u_fast, u.detach(), atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_fast, grad, atol=1e-12, rtol=0)
    torch.testing.assert_close(
        own_utilities(mech, values, bids.detach()), u_fast, atol=1e-12, rtol=0
    )


def test_adam_matches_torch() -> None:
    start = torch.randn(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = start.clone().requires_grad_(True)
    ours = start.clone()
    opt_ref, opt = torch.optim.Adam([ref], lr=0.05), Adam([ours], lr=0.05)
    for _ in range(30):
        opt_ref.zero_grad()
        (ref**3 - ref).sum().backward()
        opt_ref.step()
        opt.step([3 * ours**2 - 1])
    torch.testing.assert_close(ours, ref.detach(), atol=1e-12, rtol=0)


@pytest.mark.parametrize("entries", [2, 3, 4])
def test_subset_sparsemax_matches_sorted(entries: int) -> None:
    gen = torch.Generator().manual_seed(entries)
    x = (3 * torch.randn(200, entries, 2, generator=gen, dtype=torch.float64)).requires_grad_()
    w = torch.randn(200, entries, 2, generator=gen, dtype=torch.float64)
    fast, ref = sparsemax(x, dim=1), sparsemax_sorted(x, dim=1)
    (g_fast,) = torch.autograd.grad((fast * w).sum(), x)
    (g_ref,) = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(fast, ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(g_fast, g_ref, atol=1e-12, rtol=0)


def test_interval_bounds_direct_matches_engine() -> None:
    mech = Mechanism(MechanismConfig(2, 2, (16, 16)), generator=torch.Generator().manual_seed(1))
    lo = torch.rand(5, 4, generator=torch.Generator().manual_seed(2)) * 0.5
    hi = lo + 0.3
    for (l1, u1), (l2, u2) in zip(
        interval_bounds(mech.affine_layers(), lo, hi),
        interval_bounds_direct(mech.affine_layers(), lo, hi),
        strict=True,
    ):
        torch.testing.assert_close(l2, l1)
        torch.testing.assert_close(u2, u1)


def test_argmax_rows_matches_argmax_ties_included() -> None:
    u = torch.randint(0, 5, (64, 1024), generator=torch.Generator().manual_seed(0)).float()
    assert torch.equal(argmax_rows(u), u.argmax(dim=1))


def _setup(agents: int, allocation, payment, seed: int = 0, hidden=(16, 12)):
    cfg = MechanismConfig(agents, 2, hidden, allocation, payment)
    mech = Mechanism(cfg, generator=torch.Generator().manual_seed(seed)).double()
    gen = torch.Generator().manual_seed(seed + 1)
    values = torch.rand(40, agents, 2, generator=gen, dtype=torch.float64)
    misreports = torch.rand(40, agents, 2, generator=gen, dtype=torch.float64)
    mult = Multipliers(
        torch.tensor([5.0, 6.5, 4.0][:agents], dtype=torch.float64),
        torch.tensor([20.0, 21.0, 19.0][:agents], dtype=torch.float64),
        1.3,
        7.0,
    )
    return mech, values, misreports, mult


def _assert_same_update(mech, values, misreports, mult, config, box, menu=None, teacher=None):
    loss, ref_stats = training_loss(mech, values, misreports, mult, config, box, menu, teacher)
    ref = torch.autograd.grad(loss, list(mech.parameters()))
    menu_fwd = None if menu is None else forward(mech, menu)
    grads, stats = training_grads(mech, values, misreports, mult, config, box, menu_fwd, teacher)
    assert len(grads) == len(ref)
    for g, r in zip(grads, ref, strict=True):
        torch.testing.assert_close(g, r, atol=1e-12, rtol=1e-9)
    if menu_fwd is not None:  # the grid search's utilities and choices, passed in
        choice = grid_choice(values, menu_fwd.alloc[:, 0], menu_fwd.pay[:, 0])
        again, _ = training_grads(
            mech, values, misreports, mult, config, box, menu_fwd, menu_choice=choice
        )
        for g, r in zip(again, ref, strict=True):
            torch.testing.assert_close(g, r, atol=1e-12, rtol=1e-9)
    torch.testing.assert_close(stats.regret, ref_stats.regret, atol=1e-14, rtol=0)
    torch.testing.assert_close(stats.stability, ref_stats.stability, atol=1e-12, rtol=0)
    # the regret term is live: some profiles gain by misreporting
    assert float(stats.regret.sum()) > 0


@pytest.mark.parametrize("agents", [1, 2, 3])
@pytest.mark.parametrize("allocation", list(AllocationKind))
@pytest.mark.parametrize("payment", list(PaymentKind))
@pytest.mark.parametrize("stability", [0.0, 0.3])
@pytest.mark.parametrize("hidden", [(16,), (16, 12)])
def test_training_gradient_matches_autograd(agents, allocation, payment, stability, hidden):
    """The written-out gradient of eq. 4.2 / 4.8 (+ regulariser) is autograd's, so the fast
    step makes the chapter's update."""
    mech, values, misreports, mult = _setup(agents, allocation, payment, hidden=hidden)
    cfg = TrainConfig(stability_weight=stability)
    _assert_same_update(mech, values, misreports, mult, cfg, SupportBox(agents, 2))


@pytest.mark.parametrize("straight_through", [False, True])
@pytest.mark.parametrize("payment", [PaymentKind.FRACTIONAL, PaymentKind.FREE])
@pytest.mark.parametrize("hidden", [(16,), (16, 12)])
def test_menu_objective_gradient_matches_autograd(straight_through, payment, hidden) -> None:
    mech, values, misreports, mult = _setup(
        1, AllocationKind.SPARSEMAX, payment, seed=3, hidden=hidden
    )
    box = SupportBox(1, 2)
    cfg = TrainConfig(
        stability_weight=0.02,
        menu_grid=64,
        menu_temperature=0.05,
        menu_straight_through=straight_through,
    )
    menu = grid_bids(box, 64, torch.float64, "cpu")
    _assert_same_update(mech, values, misreports, mult, cfg, box, menu=menu)


def test_distillation_gradient_matches_autograd() -> None:
    mech, values, misreports, mult = _setup(2, AllocationKind.SPARSEMAX, PaymentKind.FREE)
    teacher_cfg = MechanismConfig(
        2, 2, (8,), AllocationKind.SOFTMAX, PaymentKind.FRACTIONAL_SIGMOID
    )
    teacher = Mechanism(teacher_cfg, generator=torch.Generator().manual_seed(9)).double()
    cfg = TrainConfig(distill_weight=0.5, stability_weight=0.02)
    _assert_same_update(mech, values, misreports, mult, cfg, SupportBox(2, 2), teacher=teacher)


@pytest.mark.parametrize("straight_through", [False, True])
def test_fast_training_run_matches_autograd_run(straight_through) -> None:
    """Whole runs (ascent, grid starts, multiplier updates, Adam, the menu objective) through
    the closed form and through autograd end at the same weights (float64, to rounding)."""

    class Autograd(Mechanism):  # a subclass takes the autograd paths everywhere
        pass

    box = SupportBox(1, 2)
    cfg = TrainConfig(
        steps=12,
        batch_size=64,
        lr=1e-2,
        attack=AttackConfig(3, 0.05, 1),
        lambda_every=2,
        rho_increment=0.5,
        stability_weight=0.02,
        misreport_grid=64,
        menu_grid=64,
        menu_temperature=0.02,
        menu_straight_through=straight_through,
    )
    nets = []
    for cls in (Mechanism, Autograd):
        mech = cls(MechanismConfig(1, 2, (16,)), generator=torch.Generator().manual_seed(0))
        mech = mech.double()
        gen = torch.Generator().manual_seed(1)
        train_mechanism(mech, box, cfg, gen)
        nets.append(mech)
    for p, q in zip(nets[0].parameters(), nets[1].parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-9, rtol=0)


def test_stability_gradient_matches_autograd() -> None:
    mech = Mechanism(MechanismConfig(2, 2, (16, 16)), generator=torch.Generator().manual_seed(1))
    mech = mech.double()
    lo = torch.rand(7, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 0.5
    hi = lo + 0.4
    layers = [(lin.weight, lin.bias) for lin in mech.trunk] + [
        (mech.pay_head.weight, mech.pay_head.bias)
    ]
    ref = 0.7 * stability_penalty(layers, lo, hi)
    trunk_params = [p for lin in mech.trunk for p in (lin.weight, lin.bias)]
    ref_grads = torch.autograd.grad(ref, trunk_params)
    value, grads = stability_and_grad(mech, lo, hi, 0.7)
    torch.testing.assert_close(value, ref.detach(), atol=1e-12, rtol=0)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, atol=1e-12, rtol=0)
