"""Menu revenue: what the mechanism earns when every bidder best-responds to it.

A learned mechanism that is only approximately incentive compatible can earn more than any
strategyproof one by being manipulable (the 1x2 optimum for U[0, 1] is 0.549, Manelli and
Vincent 2006). By the taxation principle, the network offers each bidder ``i`` (the others
bidding truthfully) a menu: the (allocation, payment) pairs ``(a_i(b, v_-i), p_i(b, v_-i))``
over every bid ``b`` in the support, plus the outside option (nothing, pay nothing). Letting
each bidder take its best entry gives the revenue of the exactly incentive-compatible and
individually rational mechanism the network defines for that bidder. With one bidder this *is*
a feasible mechanism; with several, each bidder's entry comes from its own deviation, so the
combined allocation may over-allocate an item: the number is then a per-bidder diagnostic.

The best entry is searched on a grid over the support (at most ``grid`` bids per bidder), then
refined by gradient ascent from the best grid point and from the attack's own misreport.
"""

from __future__ import annotations

import math

import attrs
import torch

from .gradients import own_utilities
from .mechanisms import Mechanism, utilities
from .regret import AttackConfig, deviation_utilities, find_misreports
from .valuations import SupportBox, replace_agent


@attrs.frozen
class MenuOutcome:
    """Per profile and bidder: the best bid found, its utility, and the payment of the entry
    the bidder takes (0 when the outside option beats every entry)."""

    misreports: torch.Tensor  # (B, A, items): the truthful bid unless a bid does strictly better
    utility: torch.Tensor  # (B, A): the utility at that bid
    payment: torch.Tensor  # (B, A)
    truthful_utility: torch.Tensor  # (B, A)

    @property
    def revenue(self) -> float:
        """Mean over profiles of the payments at the bidders' best responses."""
        return float(self.payment.sum(dim=-1).mean())

    @property
    def regret(self) -> torch.Tensor:
        """What the best bid found gains over the truthful one (the regret of eq. 4.1 that this
        search attains, a lower bound on the true regret), (B, A)."""
        return torch.relu(self.utility - self.truthful_utility)


def grid_bids(box: SupportBox, points: int, dtype: torch.dtype, device) -> torch.Tensor:
    """A regular grid over one bidder's bids: ``(G, items)``, ``G <= points``, >= 2 per item."""
    per_item = max(2, int(math.floor(points ** (1.0 / box.items) + 1e-9)))
    axis = torch.linspace(box.low, box.high, per_item, dtype=dtype, device=device)
    return torch.cartesian_prod(*([axis] * box.items)).reshape(-1, box.items)


def argmax_rows(u: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    """``u.argmax(dim=1)`` for a ``(B, G)`` matrix, in two stages when ``chunk`` divides G: the
    vectorised ``amax`` over chunks, then ``argmax`` over B x (G / chunk) chunk maxima and over
    the winning chunk (CPU ``argmax`` over long rows is ~20x slower than ``amax``). Ties go to
    the first index, as with ``argmax``."""
    b, g = u.shape
    if g % chunk or g < 4 * chunk:
        return u.argmax(dim=1)
    w = u.view(b, g // chunk, chunk)
    k = w.amax(dim=-1).argmax(dim=-1)
    return k * chunk + w[torch.arange(b, device=u.device), k].argmax(dim=-1)


def grid_choice(
    values: torch.Tensor, alloc: torch.Tensor, pay: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One bidder: the utility of every grid entry (allocation ``(G, items)``, payment ``(G,)``)
    at every profile, ``(B, G)``, and each profile's best entry (the first on ties), ``(B,)``."""
    u = torch.addmm(-pay, values[:, 0, :], alloc.T)
    return u, argmax_rows(u)


def best_grid_bids(
    mech: Mechanism,
    values: torch.Tensor,
    grid: torch.Tensor,
    chunk_rows: int = 4096,
    outputs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Per profile and bidder, the grid bid with the highest utility: ``(B, A, items)``.

    With one bidder the menu does not depend on the profile: the grid is evaluated once (or
    ``outputs``, its allocation ``(G, items)`` and payment ``(G,)``, are given) and each profile
    picks its entry with one matrix product. With several, the deviation profiles go through
    the network ``chunk_rows`` at a time (activations that stay in cache: 2-3x faster than one
    pass at the chapter's 2 x 128 widths)."""
    b, a, _ = values.shape
    with torch.no_grad():
        if a == 1:
            if outputs is None:
                alloc, pay = mech(grid[:, None, :])  # (G, 1, items), (G, 1)
                outputs = alloc[:, 0, :], pay[:, 0]
            return grid[grid_choice(values, *outputs)[1]][:, None, :]
        per = max(1, chunk_rows // (len(grid) * a))
        closed_form = type(mech) is Mechanism
        out = []
        for start in range(0, b, per):
            v = values[start : start + per]
            m = grid[:, None, None, :].expand(len(grid), len(v), a, grid.shape[-1])
            if closed_form:
                u = own_utilities(mech, v, m)  # (G, b, A)
            else:
                u = deviation_utilities(mech, v, m)
            out.append(grid[u.argmax(dim=0)])  # (b, A, items)
        return torch.cat(out)


def _entry(mech: Mechanism, values: torch.Tensor, misreports: torch.Tensor):
    """Utility and payment of each bidder at its own deviation: two ``(B, A)`` tensors."""
    us, pays = [], []
    with torch.no_grad():
        for agent in range(values.shape[-2]):
            bids = replace_agent(values, agent, misreports[:, agent])
            u, _, pay = utilities(mech, bids, values)
            us.append(u[:, agent])
            pays.append(pay[:, agent])
    return torch.stack(us, dim=-1), torch.stack(pays, dim=-1)


def best_responses(
    mech: Mechanism,
    values: torch.Tensor,
    box: SupportBox,
    attack: AttackConfig,
    generator: torch.Generator,
    grid: int = 1024,
    start: torch.Tensor | None = None,
) -> MenuOutcome:
    """Each bidder's best entry of the menu (grid, then ascent; ``start``: extra misreports to
    refine, e.g. the regret attack's). Truthful bidding is always on the menu, so the chosen
    utility is never below the truthful one; a bidder whose best utility is negative takes the
    outside option (pays nothing)."""
    mech.eval()
    grid_best = best_grid_bids(mech, values, grid_bids(box, grid, values.dtype, values.device))
    starts = [grid_best] + ([] if start is None else [start])
    refined, _ = find_misreports(mech, values, box, attack, generator, extra_starts=starts)
    u_truth, pay_truth = _entry(mech, values, values)
    u, pay = _entry(mech, values, refined)
    better = u > u_truth  # strictly: ties keep the truthful entry
    utility = torch.where(better, u, u_truth)
    payment = torch.where(better, pay, pay_truth)
    choice = torch.where(better[..., None], refined, values)
    outside = utility < 0  # free payments can violate IR: the bidder walks away
    return MenuOutcome(
        misreports=choice,
        utility=utility,
        payment=torch.where(outside, torch.zeros_like(payment), payment),
        truthful_utility=u_truth,
    )
