"""The trainer's fast paths compute exactly what they replace: the written-out utility gradient
against autograd, Adam against torch.optim.Adam, the subset sparsemax against the sort-based
one, closed-form interval bounds against the bound engine, two-stage argmax against argmax."""

import pytest
import torch

from threatlang.backends.mip.adam import Adam
from threatlang.backends.mip.bounds import interval_bounds, interval_bounds_direct
from threatlang.backends.mip.gradients import utility_and_grad
from threatlang.backends.mip.mechanisms import (
    AllocationKind,
    Mechanism,
    MechanismConfig,
    PaymentKind,
)
from threatlang.backends.mip.menu import argmax_rows
from threatlang.backends.mip.regret import deviation_utilities
from threatlang.backends.mip.sparsemax import sparsemax, sparsemax_sorted


@pytest.mark.parametrize("agents", [1, 2, 3])
@pytest.mark.parametrize("allocation", list(AllocationKind))
@pytest.mark.parametrize("payment", list(PaymentKind))
@pytest.mark.parametrize("clip", [False, True])
def test_utility_gradient_matches_autograd(agents, allocation, payment, clip) -> None:
    cfg = MechanismConfig(agents, 2, (16, 16), allocation, payment)
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
