"""Augmented-Lagrangian training of auction networks (eqs. 4.2, 4.8; updates of §4.6.1).

Loss per batch: ``-revenue + sum_i lambda_i rgt_i + rho/2 sum_i rgt_i^2`` (+ ``sum_i mu_i irv_i^2``
for free payments) (+ the ReLU-stability regulariser ``-tanh(1 + u l)`` over each agent's
misreport box, §4.3.3) (+ ``distill_weight`` x the mean squared error between the student's and the teacher's outputs,
averaged over every allocation and payment entry, §4.3.2 / §4.6.1: weight 1/400). Misreports
come from a few steps of gradient ascent per batch (25 in the chapter). Fresh profiles every
batch, drawn from the support with the caller's generator.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch

from .adam import Adam
from .bounds import stability_penalty
from .mechanisms import Mechanism, PaymentKind
from .menu import best_grid_bids, grid_bids
from .regret import AttackConfig, find_misreports
from .valuations import SupportBox, deviation_profiles, sample_profiles


@attrs.frozen
class TrainConfig:
    steps: int = 2000
    batch_size: int = 512
    lr: float = 1e-3
    attack: AttackConfig = AttackConfig(steps=25, lr=0.02, restarts=1)
    lambda_init: float = 5.0
    rho: float = 1.0
    rho_increment: float = 0.0
    lambda_every: int = 6
    mu_init: float = 20.0  # IR-violation multiplier (free payments)
    rho_ir: float = 5.0
    rho_ir_increment: float = 5.0  # added every `rho_ir_every` batches (§4.6.1: 5 every 5)
    rho_ir_every: int = 5
    stability_weight: float = 0.0  # weight of the ReLU-stability regulariser
    distill_weight: float = 0.0  # weight of the MSE towards the teacher (when one is given)
    misreport_grid: int = 0  # also start the ascent from the best of this many grid bids
    lr_decay_at: float = 1.0  # lr / 10 from this fraction of the steps on
    menu_grid: int = 0  # > 0: maximise the menu revenue over this many grid bids (else eq. 4.2)
    menu_temperature: float = 0.005  # of the softmax best response over the menu


@attrs.frozen
class TrainLog:
    step: int
    revenue: float
    regret: float
    ir_violation: float
    stability: float


def _boxes(values: torch.Tensor, box: SupportBox) -> tuple[torch.Tensor, torch.Tensor]:
    """Per profile and agent, the input box where that agent's bids range over the support."""
    agents = values.shape[-2]
    eye = torch.eye(agents, dtype=values.dtype, device=values.device)[:, :, None]
    base = values.unsqueeze(-3) * (1 - eye)
    lo, hi = base + box.low * eye, base + box.high * eye
    if agents == 1:  # the box is the whole support, the same for every profile: bound it once
        return lo[:1].flatten(0, 1).flatten(-2), hi[:1].flatten(0, 1).flatten(-2)
    return lo.flatten(0, 1).flatten(-2), hi.flatten(0, 1).flatten(-2)


def soft_menu_revenue(
    mech: Mechanism,
    values: torch.Tensor,
    grid: torch.Tensor,
    truthful: torch.Tensor,
    truthful_pay: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """Mean over profiles of the payments when every bidder best-responds over its menu (the
    grid bids, its truthful bid, the outside option), the best response softened to a softmax
    at ``temperature`` so the revenue is differentiable in the network: a scalar.
    ``truthful``/``truthful_pay``: ``(B, A)`` at the truthful bids (the forward already done)."""
    b, agents, items = values.shape
    if agents == 1:  # the menu does not depend on the profile: one forward of the grid
        alloc, pay = mech(grid[:, None, :])
        u = values[:, 0, :] @ alloc[:, 0, :].T - pay[:, 0]  # (B, G)
        pays = pay[:, 0].expand(b, -1)
        u, pays = u[:, None], pays[:, None]  # (B, 1, G)
    else:
        m = grid[:, None, None, :].expand(len(grid), b, agents, items)
        profiles = deviation_profiles(values, m)  # (G, B, A, A, items)
        alloc, pay = mech(profiles)
        own = torch.diagonal(alloc, dim1=-3, dim2=-2).movedim(-1, -2)  # (G, B, A, items)
        u = ((own * values).sum(-1) - torch.diagonal(pay, dim1=-2, dim2=-1)).movedim(0, -1)
        pays = torch.diagonal(pay, dim1=-2, dim2=-1).movedim(0, -1)  # (B, A, G)
    zeros = torch.zeros_like(truthful)[..., None]
    u = torch.cat([u, truthful[..., None], zeros], dim=-1)
    pays = torch.cat([pays, truthful_pay[..., None], zeros], dim=-1)
    weights = torch.softmax(u / temperature, dim=-1)
    return (weights * pays).sum(-1).sum(-1).mean()


def train_mechanism(
    mech: Mechanism,
    box: SupportBox,
    config: TrainConfig,
    generator: torch.Generator,
    teacher: Mechanism | None = None,
    on_step: Callable[[TrainLog], None] | None = None,
    log_every: int = 100,
) -> list[TrainLog]:
    """Train ``mech`` in place; returns a log every ``log_every`` steps. Deterministic given
    ``generator`` (which draws the profiles, the misreport restarts, on the mechanism's device).
    """
    agents = box.agents
    device = next(mech.parameters()).device
    params = list(mech.parameters())
    opt = Adam(params, lr=config.lr)
    lam = torch.full((agents,), config.lambda_init, device=device)
    mu = torch.full((agents,), config.mu_init, device=device)
    rho, rho_ir = config.rho, config.rho_ir
    logs: list[TrainLog] = []
    free = mech.config.payment is PaymentKind.FREE
    layers = [(lin.weight, lin.bias) for lin in mech.trunk] + [
        (mech.pay_head.weight, mech.pay_head.bias)
    ]
    decay_step = int(config.lr_decay_at * config.steps)
    grid = menu = None
    if config.misreport_grid:
        grid = grid_bids(box, config.misreport_grid, torch.float32, device)
    if config.menu_grid:
        menu = grid_bids(box, config.menu_grid, torch.float32, device)
    for step in range(1, config.steps + 1):
        if step == decay_step + 1:
            opt.lr = config.lr / 10
        values = sample_profiles(box, config.batch_size, generator)
        mech.eval()
        starts = None if grid is None else [best_grid_bids(mech, values, grid)]
        misreports, _ = find_misreports(mech, values, box, config.attack, generator, starts)
        mech.train()
        # one forward for the truthful profile and every agent's deviation, (B, 1 + A, ...)
        both = torch.cat([values[:, None], deviation_profiles(values, misreports)], dim=1)
        alloc_all, pay_all = mech(both)
        alloc, pay = alloc_all[:, 0], pay_all[:, 0]
        truthful = (alloc * values).sum(dim=-1) - pay
        lying = (alloc_all[:, 1:] * values[:, None]).sum(dim=-1) - pay_all[:, 1:]
        rgt = torch.relu(torch.diagonal(lying, dim1=-2, dim2=-1) - truthful).mean(dim=0)
        irv = torch.relu(pay - (alloc * values).sum(dim=-1)).mean(dim=0)
        revenue = pay.sum(dim=-1).mean()
        if menu is not None:
            revenue = soft_menu_revenue(mech, values, menu, truthful, pay, config.menu_temperature)
        loss = -revenue + (lam * rgt).sum() + rho / 2 * (rgt**2).sum()
        if free:
            loss = loss + (mu * irv**2).sum()
        stab = torch.zeros((), device=device)
        if config.stability_weight > 0:
            stab = stability_penalty(layers, *_boxes(values, box))
            loss = loss + config.stability_weight * stab
        if teacher is not None and config.distill_weight > 0:
            with torch.no_grad():
                t_alloc, t_pay = teacher(values)
            diff = torch.cat([(alloc - t_alloc).flatten(1), pay - t_pay], dim=1)
            loss = loss + config.distill_weight * diff.pow(2).mean()
        opt.step(torch.autograd.grad(loss, params))
        if step % config.lambda_every == 0:
            lam = lam + rho * rgt.detach()
            rho += config.rho_increment
            mu = mu + rho_ir * irv.detach()
        if step % config.rho_ir_every == 0:
            rho_ir += config.rho_ir_increment
        if step % log_every == 0 or step == config.steps:
            log = TrainLog(
                step,
                float(pay.detach().sum(-1).mean()),
                float(rgt.detach().mean()),
                float(irv.detach().mean()),
                float(stab.detach()),
            )
            logs.append(log)
            if on_step is not None:
                on_step(log)
    mech.eval()
    if free:
        mech.clip_payments = True  # clip to the feasible range after training (§4.3.2)
    return logs
