"""Training behaviour: the stability regulariser stabilises ReLUs, distillation pulls the student
towards the teacher, and PGD misreports stay in the support with a regret no grid point beats."""

import pytest
import torch

from threatlang.backends.mip.bounds import BoundMethod, layer_bounds
from threatlang.backends.mip.mechanisms import (
    AllocationKind,
    Mechanism,
    MechanismConfig,
    PaymentKind,
    utilities,
)
from threatlang.backends.mip.regret import AttackConfig, empirical_regret
from threatlang.backends.mip.train import TrainConfig, train_mechanism
from threatlang.backends.mip.valuations import SupportBox, sample_profiles

BOX = SupportBox(1, 2)


def _unstable(mech: Mechanism) -> int:
    lo, hi = torch.zeros(1, 2), torch.ones(1, 2)
    bounds = layer_bounds(mech.affine_layers(), lo, hi, BoundMethod.INTERVAL)[:-1]
    return int(sum(((low < 0) & (up > 0)).sum() for low, up in bounds))


def _trained(stability: float, teacher=None, distill: float = 0.0) -> Mechanism:
    gen = torch.Generator().manual_seed(0)
    mech = Mechanism(MechanismConfig(1, 2, (16,), payment=PaymentKind.FREE), generator=gen)
    cfg = TrainConfig(
        steps=40,
        batch_size=64,
        lr=1e-2,
        attack=AttackConfig(3, 0.05, 1),
        stability_weight=stability,
        distill_weight=distill,
    )
    train_mechanism(mech, BOX, cfg, gen, teacher=teacher)
    return mech


def test_stability_regulariser_reduces_unstable_relus() -> None:
    assert _unstable(_trained(stability=1.0)) < _unstable(_trained(stability=0.0))


def test_distillation_pulls_student_to_teacher() -> None:
    cfg = MechanismConfig(1, 2, (16,), AllocationKind.SOFTMAX, PaymentKind.FRACTIONAL_SIGMOID)
    teacher = Mechanism(cfg, generator=torch.Generator().manual_seed(5)).eval()
    values = sample_profiles(BOX, 256, torch.Generator().manual_seed(9))

    def gap(student: Mechanism) -> float:
        with torch.no_grad():
            (a, p), (ta, tp) = student(values), teacher(values)
        return float(((a - ta) ** 2).mean() + ((p - tp) ** 2).mean())

    assert gap(_trained(0.0, teacher, distill=50.0)) < gap(_trained(0.0))


def test_free_payment_is_clipped_after_training() -> None:
    mech = _trained(0.0)
    assert mech.clip_payments and not mech.training
    _, pay = mech(sample_profiles(BOX, 128, torch.Generator().manual_seed(2)))
    assert (pay >= 0).all()


def test_pgd_misreports_stay_in_support_and_never_beat_the_grid() -> None:
    mech = Mechanism(MechanismConfig(1, 2, (16,)), generator=torch.Generator().manual_seed(4))
    values = sample_profiles(BOX, 4, torch.Generator().manual_seed(3), dtype=torch.float64)
    mech = mech.double().eval()
    regret, misreports = empirical_regret(
        mech, values, BOX, AttackConfig(60, 0.05, 2), torch.Generator().manual_seed(1)
    )
    assert (misreports >= 0).all() and (misreports <= 1).all()
    g = torch.linspace(0, 1, 201, dtype=torch.float64)
    grid = torch.cartesian_prod(g, g)[:, None, :]
    for k in range(len(values)):
        with torch.no_grad():
            u, _, _ = utilities(mech, grid, values[k].expand(len(grid), 1, 2))
            truth, _, _ = utilities(mech, values[k][None], values[k][None])
        # grid spacing 0.005: PGD cannot exceed the true max, which is within Lipschitz slack
        assert float(regret[k, 0]) <= float(u.max() - truth[0, 0]) + 5e-3
        assert float(regret[k, 0]) >= 0


def test_soft_menu_revenue_tends_to_the_hard_menu_revenue() -> None:
    """At a small temperature the softmax best response is the argmax entry of the menu
    (grid bids, truthful bid, outside option), and it never pays more than the best entry."""
    from threatlang.backends.mip.menu import grid_bids
    from threatlang.backends.mip.train import soft_menu_revenue

    mech = Mechanism(MechanismConfig(1, 2, (16,)), generator=torch.Generator().manual_seed(0))
    values = sample_profiles(BOX, 64, torch.Generator().manual_seed(1))
    grid = grid_bids(BOX, 64, torch.float32, "cpu")
    with torch.no_grad():
        alloc, pay = mech(values)
        truthful = (alloc * values).sum(-1) - pay
        soft = soft_menu_revenue(mech, values, grid, truthful, pay, 1e-6)
        g_alloc, g_pay = mech(grid[:, None, :])
        u = torch.cat([values[:, 0] @ g_alloc[:, 0].T - g_pay[:, 0], truthful, 0 * truthful], 1)
        pays = torch.cat([g_pay[:, 0].expand(64, -1), pay, 0 * pay], 1)
        hard = pays.gather(1, u.argmax(1, keepdim=True)).mean()
    assert float(soft) == pytest.approx(float(hard), abs=1e-4)
