"""Menu revenue on mechanisms whose answer is known: a posted price is incentive compatible (menu
revenue = revenue), a pay-half-your-bid auction is not (every bidder bids 0: menu revenue 0),
and a mechanism charging more than the item is worth loses the bidder to the outside option."""

import torch
from torch import nn

from threatlang.backends.mip.menu import best_grid_bids, best_responses, grid_bids
from threatlang.backends.mip.regret import AttackConfig, deviation_utilities
from threatlang.backends.mip.valuations import SupportBox, sample_profiles

BOX = SupportBox(1, 1)
ATTACK = AttackConfig(steps=20, lr=0.02, restarts=1)


class _OneItem(nn.Module):
    """One bidder, one item: ``rule(bid) -> (allocation, payment)``."""

    def __init__(self, rule) -> None:
        super().__init__()
        self.rule = rule

    def forward(self, bids: torch.Tensor):
        b = bids[..., 0, 0]
        alloc, pay = self.rule(b)
        zero = 0 * b  # keeps the autograd graph for rules that are flat in the bid
        return (alloc + zero)[..., None, None], (pay + zero)[..., None]


def _values(n: int = 400) -> torch.Tensor:
    return sample_profiles(BOX, n, torch.Generator().manual_seed(0), torch.float64)


def _menu(mech, values):
    return best_responses(mech, values, BOX, ATTACK, torch.Generator().manual_seed(1), grid=101)


def test_posted_price_is_incentive_compatible() -> None:
    price = 0.5
    mech = _OneItem(lambda b: ((b >= price).double(), price * (b >= price).double()))
    values = _values()
    menu = _menu(mech, values)
    revenue = float(mech(values)[1].sum(-1).mean())
    assert revenue > 0.2  # about half the bidders buy at 0.5
    assert abs(menu.revenue - revenue) < 1e-12
    assert float(menu.regret.max()) == 0.0


def test_pay_your_half_bid_collapses_to_zero() -> None:
    mech = _OneItem(lambda b: (torch.ones_like(b), b / 2))
    values = _values()
    assert float(mech(values)[1].mean()) > 0.2  # truthful revenue E[v] / 2
    menu = _menu(mech, values)
    assert menu.revenue == 0.0  # everyone bids the grid's 0 (the ascent agrees)
    torch.testing.assert_close(menu.regret[:, 0], values[:, 0, 0] / 2)


def test_overcharged_bidders_take_the_outside_option() -> None:
    mech = _OneItem(lambda b: (torch.ones_like(b), torch.full_like(b, 2.0)))  # pays 2 > value
    menu = _menu(mech, _values())
    assert menu.revenue == 0.0


def test_one_bidder_shortcut_matches_the_general_search() -> None:
    from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig

    box = SupportBox(1, 2)
    gen = torch.Generator().manual_seed(0)
    mech = Mechanism(MechanismConfig(1, 2, (16,)), generator=gen).double()
    values = sample_profiles(box, 50, gen, torch.float64)
    grid = grid_bids(box, 400, torch.float64, "cpu")
    assert len(grid) == 400
    general = grid[
        deviation_utilities(mech, values, grid[:, None, None, :].expand(400, 50, 1, 2)).argmax(0)
    ]
    torch.testing.assert_close(best_grid_bids(mech, values, grid), general)
