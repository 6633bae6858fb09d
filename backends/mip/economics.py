"""Revenue, menu revenue, empirical (PGD) regret and IR violations of a mechanism on profiles
(Tables 4.1, 4.4)."""

from __future__ import annotations

import attrs
import torch

from .mechanisms import Mechanism
from .menu import best_responses
from .regret import AttackConfig, empirical_regret
from .valuations import SupportBox


@attrs.frozen
class Economics:
    revenue: float
    regret: torch.Tensor  # (B, agents) PGD regret
    menu_revenue: float  # payments at every bidder's best response over the menu
    menu_regret: torch.Tensor  # (B, agents) utility gain of that best response
    menu_misreports: torch.Tensor  # (B, agents, items) that best response
    ir_violation_rate: float  # fraction of (profile, agent) pairs paying more than they value
    ir_violation_max: float
    ir_violation_mean: float
    revenue_after_ir: float  # revenue when IR-violating payments are dropped


def evaluate_economics(
    mech: Mechanism,
    values: torch.Tensor,
    box: SupportBox,
    attack: AttackConfig,
    generator: torch.Generator,
    grid: int = 1024,
    batch: int = 500,
) -> Economics:
    regrets, menu_regrets, menu_pays, pays, viols, menu_bids = [], [], [], [], [], []
    for start in range(0, len(values), batch):
        v = values[start : start + batch]
        r, misreports = empirical_regret(mech, v, box, attack, generator)
        menu = best_responses(mech, v, box, attack, generator, grid, start=misreports)
        with torch.no_grad():
            alloc, pay = mech(v)
        regrets.append(r)
        menu_regrets.append(menu.regret)
        menu_pays.append(menu.payment)
        menu_bids.append(menu.misreports)
        pays.append(pay)
        viols.append(torch.relu(pay - (alloc * v).sum(dim=-1)))
    pay, viol = torch.cat(pays), torch.cat(viols)
    bad = viol > 0
    return Economics(
        revenue=float(pay.sum(dim=-1).mean()),
        regret=torch.cat(regrets),
        menu_revenue=float(torch.cat(menu_pays).sum(dim=-1).mean()),
        menu_regret=torch.cat(menu_regrets),
        menu_misreports=torch.cat(menu_bids),
        ir_violation_rate=float(bad.double().mean()),
        ir_violation_max=float(viol.max()),
        ir_violation_mean=float(viol.mean()),
        revenue_after_ir=float(torch.where(bad, torch.zeros_like(pay), pay).sum(dim=-1).mean()),
    )
