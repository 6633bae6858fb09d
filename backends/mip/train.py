"""Augmented-Lagrangian training of auction networks (eqs. 4.2, 4.8; updates of §4.6.1).

Loss per batch: ``-revenue + sum_i lambda_i rgt_i + rho/2 sum_i rgt_i^2`` (+ ``sum_i mu_i irv_i^2``
for free payments) (+ the ReLU-stability regulariser ``-tanh(1 + u l)`` over each agent's
misreport box, §4.3.3) (+ ``distill_weight`` x the mean squared error between the student's and the teacher's outputs,
averaged over every allocation and payment entry, §4.3.2 / §4.6.1: weight 1/400). Misreports
come from a few steps of gradient ascent per batch (25 in the chapter). Fresh profiles every
batch, drawn from the support with the caller's generator. The loss's gradient is written out
(``training_grads``; ``training_loss`` is the autograd reference it is tested against).
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch

from .adam import Adam
from .bounds import stability_penalty
from .gradients import (
    Forward,
    Weights,
    backward,
    forward,
    own_diagonal,
    prepare,
    spread_diagonal,
    stability_and_grad,
)
from .mechanisms import Mechanism, PaymentKind
from .menu import argmax_rows, best_grid_bids, grid_bids, grid_choice
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
    #: the revenue at the hard best response, its gradient through the softmax (straight-through)
    menu_straight_through: bool = False


@attrs.frozen
class Multipliers:
    """The augmented Lagrangian's state (§4.6.1): regret multipliers ``lam`` and their step
    ``rho``, IR-violation multipliers ``mu`` and their step ``rho_ir``."""

    lam: torch.Tensor  # (agents,)
    mu: torch.Tensor  # (agents,)
    rho: float
    rho_ir: float


@attrs.frozen
class StepStats:
    """What one batch's loss saw (detached): truthful payments ``(B, A)``, mean regret and IR
    violation per agent, the stability penalty (unweighted)."""

    pay: torch.Tensor
    regret: torch.Tensor
    ir_violation: torch.Tensor
    stability: torch.Tensor


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
    straight_through: bool = False,
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
    if straight_through:  # the value at the argmax entry, the softmax's gradient
        hard = torch.zeros_like(weights).scatter_(-1, u.argmax(dim=-1, keepdim=True), 1.0)
        weights = hard + (weights - weights.detach())
    return (weights * pays).sum(-1).sum(-1).mean()


def training_loss(
    mech: Mechanism,
    values: torch.Tensor,
    misreports: torch.Tensor,
    mult: Multipliers,
    config: TrainConfig,
    box: SupportBox,
    menu: torch.Tensor | None = None,
    teacher: Mechanism | None = None,
) -> tuple[torch.Tensor, StepStats]:
    """The batch's loss (eq. 4.2 / 4.8 with the optional terms) through autograd: the reference
    the closed-form ``training_grads`` is held to, and the path for anything it does not cover."""
    free = mech.config.payment is PaymentKind.FREE
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
        revenue = soft_menu_revenue(
            mech,
            values,
            menu,
            truthful,
            pay,
            config.menu_temperature,
            config.menu_straight_through,
        )
    loss = -revenue + (mult.lam * rgt).sum() + mult.rho / 2 * (rgt**2).sum()
    if free:
        loss = loss + (mult.mu * irv**2).sum()
    stab = torch.zeros((), dtype=values.dtype, device=values.device)
    if config.stability_weight > 0:
        layers = [(lin.weight, lin.bias) for lin in mech.trunk]
        layers.append((mech.pay_head.weight, mech.pay_head.bias))
        stab = stability_penalty(layers, *_boxes(values, box))
        loss = loss + config.stability_weight * stab
    if teacher is not None and config.distill_weight > 0:
        with torch.no_grad():
            t_alloc, t_pay = teacher(values)
        diff = torch.cat([(alloc - t_alloc).flatten(1), pay - t_pay], dim=1)
        loss = loss + config.distill_weight * diff.pow(2).mean()
    stats = StepStats(pay.detach(), rgt.detach(), irv.detach(), stab.detach())
    return loss, stats


def closed_form_covers(mech: Mechanism, config: TrainConfig, teacher: Mechanism | None) -> bool:
    """Whether ``training_grads`` computes this loss's gradient: the mechanism itself (a
    subclass may compute something else), the menu objective for one bidder."""
    plain = type(mech) is Mechanism and (teacher is None or type(teacher) is Mechanism)
    return plain and (config.menu_grid == 0 or mech.config.agents == 1)


@torch.no_grad()
def training_grads(
    mech: Mechanism,
    values: torch.Tensor,
    misreports: torch.Tensor,
    mult: Multipliers,
    config: TrainConfig,
    box: SupportBox,
    menu: Forward | None = None,
    teacher: Mechanism | None = None,
    weights: Weights | None = None,
    boxes: tuple[torch.Tensor, torch.Tensor] | None = None,
    menu_choice: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[list[torch.Tensor], StepStats]:
    """``training_loss``'s gradient in ``mech.parameters()``, written out: one forward of the
    truthful and deviation profiles, the loss's gradient in each row's allocation and payment
    by hand, then ``gradients.backward``. ``menu``: the forward of the menu's grid bids (one
    bidder; ``closed_form_covers``); ``weights``: ``gradients.prepare(mech)``; ``boxes``: the
    regulariser's input boxes when the caller has them (one bidder: the same every batch);
    ``menu_choice``: the menu grid's ``(B, G)`` utilities at ``values`` and each profile's best
    grid entry, when the caller has them."""
    b, agents, items = values.shape
    if menu is not None and agents != 1:
        raise ValueError("the written-out menu objective is for one bidder; use training_loss")
    free = mech.config.payment is PaymentKind.FREE
    rows = torch.cat([values[:, None], deviation_profiles(values, misreports)], dim=1)
    w = prepare(mech) if weights is None else weights
    fwd = forward(mech, rows.reshape(-1, agents * items), w)
    alloc_all = fwd.alloc.view(b, 1 + agents, agents, items)
    pay_all = fwd.pay.view(b, 1 + agents, agents)
    alloc, pay = alloc_all[:, 0], pay_all[:, 0]
    won = (alloc * values).sum(-1)
    truthful = won - pay
    lying = (own_diagonal(alloc_all[:, 1:]) * values).sum(-1) - own_diagonal(pay_all[:, 1:])
    gain = lying - truthful
    rgt = gain.clamp_min(0.0).mean(0)
    # d loss / d gain per (profile, agent): (lam + rho rgt) / B where the regret is positive
    s = torch.where(gain > 0, (mult.lam + mult.rho * rgt) / b, 0.0)
    g_true = -s  # d loss / d truthful utility
    g_pay0 = torch.zeros_like(pay)
    g_alloc0 = torch.zeros_like(alloc)
    irv = (pay - won).clamp_min(0.0).mean(0)
    if free:  # + sum mu irv^2: d / d (pay - won) = 2 mu irv / B where violated
        g_irv = torch.where(pay > won, 2 * mult.mu * irv / b, 0.0)
        g_pay0 = g_pay0 + g_irv
        g_alloc0 = g_alloc0 - g_irv[..., None] * values
    grads_menu = None
    if menu is None:
        g_pay0 = g_pay0 - 1.0 / b  # - revenue
    else:
        g_true, g_pay0, grads_menu = _menu_grads(
            mech, values, truthful, pay, menu, config, g_true, g_pay0, w, menu_choice
        )
    g_alloc0 = g_alloc0 + g_true[..., None] * values
    g_pay0 = g_pay0 - g_true
    if teacher is not None and config.distill_weight > 0:
        t_alloc, t_pay = teacher(values)
        scale = 2 * config.distill_weight / (b * agents * (items + 1))
        g_alloc0 = g_alloc0 + scale * (alloc - t_alloc)
        g_pay0 = g_pay0 + scale * (pay - t_pay)
    g_alloc = torch.cat([g_alloc0[:, None], spread_diagonal(s[..., None] * values)], dim=1)
    g_pay = torch.cat([g_pay0[:, None], torch.diag_embed(-s)], dim=1)
    grads, _ = backward(
        mech, fwd, g_alloc.view(-1, agents, items), g_pay.view(-1, agents), weights_of=w
    )
    if grads_menu is not None:
        grads = [g + h for g, h in zip(grads, grads_menu, strict=True)]
    stab = torch.zeros((), dtype=values.dtype, device=values.device)
    if config.stability_weight > 0:
        lo, hi = _boxes(values, box) if boxes is None else boxes
        stab, g_stab = stability_and_grad(mech, lo, hi, config.stability_weight)
        stab = stab / config.stability_weight
        for k, g in enumerate(g_stab):
            grads[k] = grads[k] + g
    return grads, StepStats(pay, rgt, irv, stab)


def _menu_grads(
    mech,
    values,
    truthful,
    pay,
    menu: Forward,
    config: TrainConfig,
    g_true,
    g_pay0,
    weights,
    choice: tuple[torch.Tensor, torch.Tensor] | None = None,
):
    """One bidder: ``- soft_menu_revenue``'s gradient, in the truthful utility and payment (added
    to ``g_true``, ``g_pay0``) and in the parameters through the menu's grid rows.

    The ``(B, G)`` utilities of the grid entries are the only large array: the softmax is taken
    in place on them and never divided out (its normaliser goes into the right-hand side), and
    every sum over profiles the gradient needs comes from one product with it. ``choice``: those
    utilities and each profile's first best grid entry when the caller has them (the misreport
    grid search computes both)."""
    b = values.shape[0]
    temp = config.menu_temperature
    alloc_g, pay_g = menu.alloc[:, 0], menu.pay[:, 0]  # (G, items), (G,)
    v, t, p_t = values[:, 0], truthful[:, 0], pay[:, 0]
    if choice is None:
        u = torch.addmm(-pay_g, v, alloc_g.T)  # (B, G)
        best = argmax_rows(u) if config.menu_straight_through else None
    else:
        u, best = choice
        u = u.clone()
    top = u.amax(dim=1) if best is None else u.gather(1, best[:, None])[:, 0]
    # the softmax over [grid entries, truthful bid, outside option (utility 0, pays 0)]
    high = torch.maximum(top, t).clamp_min_(0.0)
    e = u.sub_(high[:, None]).mul_(1.0 / temp).exp_()  # (B, G), unnormalised
    e_t, e_0 = ((t - high) / temp).exp(), (-high / temp).exp()
    inv_z = 1.0 / (e.sum(1) + e_t + e_0)
    mean = (e @ pay_g + e_t * p_t) * inv_z  # the softmax's mean payment per profile
    rhs = torch.cat([v, mean[:, None] * v, torch.ones_like(mean)[:, None], mean[:, None]], 1)
    sums = e.T @ (rhs * inv_z[:, None])  # (G, 2 items + 2): sums over profiles of soft * rhs
    items = v.shape[1]
    k = -1.0 / (b * temp)  # d(-revenue)/du = -soft (pays - mean) / (B T)
    g_alloc_g = k * (pay_g[:, None] * sums[:, :items] - sums[:, items : 2 * items])
    g_u_sum = k * (pay_g * sums[:, -2] - sums[:, -1])
    soft_t = e_t * inv_z
    if config.menu_straight_through:  # the payment at the argmax entry (first on ties)
        grid_wins = (top >= t) & (top >= 0)
        picks = torch.zeros_like(pay_g).index_add_(0, best, grid_wins.to(pay_g.dtype))
        g_pays_g = picks * (-1.0 / b)
        g_pays_t = torch.where(~grid_wins & (t >= 0), -1.0 / b, 0.0)
    else:
        g_pays_g = sums[:, -2] * (-1.0 / b)
        g_pays_t = soft_t * (-1.0 / b)
    g_pay_g = g_pays_g - g_u_sum
    grads, _ = backward(mech, menu, g_alloc_g[:, None], g_pay_g[:, None], weights_of=weights)
    g_u_t = k * soft_t * (p_t - mean)
    return g_true + g_u_t[:, None], g_pay0 + g_pays_t[:, None], grads


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

    The loss's gradient is written out (``training_grads``) where it covers the loss, else taken
    through autograd (``training_loss``); the two agree to rounding (``tests/mip``).
    """
    agents = box.agents
    params = list(mech.parameters())
    device, dtype = params[0].device, params[0].dtype
    opt = Adam(params, lr=config.lr)
    mult = Multipliers(
        torch.full((agents,), config.lambda_init, dtype=dtype, device=device),
        torch.full((agents,), config.mu_init, dtype=dtype, device=device),
        config.rho,
        config.rho_ir,
    )
    logs: list[TrainLog] = []
    free = mech.config.payment is PaymentKind.FREE
    closed = closed_form_covers(mech, config, teacher)
    decay_step = int(config.lr_decay_at * config.steps)
    grid = menu = None
    if config.misreport_grid:
        grid = grid_bids(box, config.misreport_grid, dtype, device)
    if config.menu_grid:
        menu = grid_bids(box, config.menu_grid, dtype, device)
    shared = grid is not None and menu is not None and config.menu_grid == config.misreport_grid
    one_bidder = closed and agents == 1
    # one bidder: the regulariser's box is the whole support, the same every batch
    fixed_boxes = _boxes(torch.zeros(1, *box.shape, dtype=dtype, device=device), box)
    for step in range(1, config.steps + 1):
        if step == decay_step + 1:
            opt.lr = config.lr / 10
        values = sample_profiles(box, config.batch_size, generator, dtype)
        mech.eval()
        weights = prepare(mech) if closed else None
        # one bidder: the grid's outputs do not depend on the profile; one forward serves the
        # misreport grid and the menu when they are the same grid
        grid_fwd = forward(mech, grid, weights) if one_bidder and grid is not None else None
        menu_fwd = None
        if one_bidder and menu is not None:
            menu_fwd = grid_fwd if shared else forward(mech, menu, weights)
        starts = choice = None
        if grid_fwd is not None:  # the grid's utilities serve the grid search and the menu
            choice = grid_choice(values, grid_fwd.alloc[:, 0], grid_fwd.pay[:, 0])
            starts = [grid[choice[1]][:, None, :]]
        elif grid is not None:
            starts = [best_grid_bids(mech, values, grid)]
        misreports, _ = find_misreports(
            mech, values, box, config.attack, generator, starts, weights
        )
        mech.train()
        if closed:
            boxes = fixed_boxes if agents == 1 else None
            grads, stats = training_grads(
                mech,
                values,
                misreports,
                mult,
                config,
                box,
                menu_fwd,
                teacher,
                weights,
                boxes,
                choice if shared else None,
            )
        else:
            loss, stats = training_loss(mech, values, misreports, mult, config, box, menu, teacher)
            grads = list(torch.autograd.grad(loss, params))
        opt.step(grads)
        if step % config.lambda_every == 0:
            mult = Multipliers(
                mult.lam + mult.rho * stats.regret,
                mult.mu + mult.rho_ir * stats.ir_violation,
                mult.rho + config.rho_increment,
                mult.rho_ir,
            )
        if step % config.rho_ir_every == 0:
            mult = attrs.evolve(mult, rho_ir=mult.rho_ir + config.rho_ir_increment)
        if step % log_every == 0 or step == config.steps:
            log = TrainLog(
                step,
                float(stats.pay.sum(-1).mean()),
                float(stats.regret.mean()),
                float(stats.ir_violation.mean()),
                float(stats.stability),
            )
            logs.append(log)
            if on_step is not None:
                on_step(log)
    mech.eval()
    if free:
        mech.clip_payments = True  # clip to the feasible range after training (§4.3.2)
    return logs
