"""Revenue, empirical (PGD) regret and IR violations of a mechanism on profiles (Tables 4.1, 4.4)."""

from __future__ import annotations

import attrs
import torch

from .mechanisms import Mechanism
from .regret import AttackConfig, empirical_regret
from .valuations import SupportBox


@attrs.frozen
class Economics:
    revenue: float
    regret: torch.Tensor  # (B, agents) PGD regret
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
    batch: int = 500,
) -> Economics:
    regrets, pays, viols = [], [], []
    for start in range(0, len(values), batch):
        v = values[start : start + batch]
        r, _ = empirical_regret(mech, v, box, attack, generator)
        with torch.no_grad():
            alloc, pay = mech(v)
        regrets.append(r)
        pays.append(pay)
        viols.append(torch.relu(pay - (alloc * v).sum(dim=-1)))
    pay, viol = torch.cat(pays), torch.cat(viols)
    bad = viol > 0
    return Economics(
        revenue=float(pay.sum(dim=-1).mean()),
        regret=torch.cat(regrets),
        ir_violation_rate=float(bad.double().mean()),
        ir_violation_max=float(viol.max()),
        ir_violation_mean=float(viol.mean()),
        revenue_after_ir=float(torch.where(bad, torch.zeros_like(pay), pay).sum(dim=-1).mean()),
    )
