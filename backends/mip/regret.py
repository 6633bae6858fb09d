"""Empirical regret: misreports found by projected gradient ascent (RegretNet, §4.2.2.2).

Every agent misreports in parallel, from the truthful bid and from random restarts; the best
utility seen over all steps is kept, so the empirical regret is a true lower bound on the
regret (eq. 4.1) that the MIP certifies from above.
"""

from __future__ import annotations

import attrs
import torch

from .adam import Adam
from .gradients import Weights, own_utilities, prepare, utility_and_grad
from .mechanisms import Mechanism, utilities
from .valuations import SupportBox, deviation_profiles


@attrs.frozen
class AttackConfig:
    steps: int = 25
    lr: float = 0.02
    restarts: int = 1  # restart 0 starts at the truthful bid, the others uniformly at random


def deviation_utilities(
    mech: Mechanism, values: torch.Tensor, misreports: torch.Tensor
) -> torch.Tensor:
    """Utility of each agent ``i`` when it alone reports ``misreports[..., i, :]``: ``(..., A)``."""
    profiles = deviation_profiles(values, misreports)
    u, _, _ = utilities(mech, profiles, values.unsqueeze(-3).expand_as(profiles))
    return torch.diagonal(u, dim1=-2, dim2=-1)


def _autograd_utility(mech, values: torch.Tensor, m: torch.Tensor):
    with torch.enable_grad():
        leaf = m.detach().requires_grad_(True)
        u = deviation_utilities(mech, values, leaf)
        (grad,) = torch.autograd.grad(u.sum(), leaf)
    return u.detach(), grad


def _best(points: list[torch.Tensor], utils: list[torch.Tensor]):
    """The best of every scored point: ``points[k] (S, B, A, items)``, ``utils[k] (S, B, A)``."""
    m = torch.cat(points)
    best = torch.cat(utils).max(dim=0)
    return torch.gather(m, 0, best.indices[None, ..., None].expand(1, *m.shape[1:]))[0], best.values


def find_misreports(
    mech: Mechanism,
    values: torch.Tensor,
    box: SupportBox,
    config: AttackConfig,
    generator: torch.Generator,
    extra_starts: list[torch.Tensor] | None = None,
    weights: Weights | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best misreports ``(B, A, items)`` and their utilities ``(B, A)`` (no grad to the net).

    Ascent starts at the truthful bids, at ``extra_starts`` (e.g. the best point of a grid) and
    at ``restarts - 1`` uniform random bids; the best utility seen at any step is kept.

    One forward per step: the forward that gives a step's gradient also scores the point it
    was taken at (``steps + 1`` forwards in all); the gradient in the misreports only, written
    out for ``Mechanism`` itself (``gradients.py``, no autograd graph; autograd for anything
    else; ``weights``: ``gradients.prepare(mech)`` if the caller has it); Adam is a few tensor
    operations."""
    starts = [values, *(extra_starts or [])]
    for _ in range(config.restarts - 1):
        starts.append(
            box.low
            + (box.high - box.low)
            * torch.rand(
                values.shape, generator=generator, dtype=values.dtype, device=values.device
            )
        )
    m = torch.stack(starts).detach().clone()
    opt = Adam([m], lr=config.lr)
    values = values.detach()
    points, utils = [], []
    closed_form = type(mech) is Mechanism  # a subclass may compute something else: autograd
    if closed_form and weights is None:
        weights = prepare(mech)
    for _ in range(config.steps):
        if closed_form:
            u, grad = utility_and_grad(mech, values, m, weights)
        else:
            u, grad = _autograd_utility(mech, values, m)
        points.append(m.clone())  # scored before the step moves it
        utils.append(u)
        opt.step([grad.neg_()])
        m.clamp_(box.low, box.high)
    with torch.no_grad():
        if closed_form:
            utils.append(own_utilities(mech, values, m, weights))
        else:
            utils.append(deviation_utilities(mech, values, m))
    points.append(m)
    best_m, best_u = _best(points, utils)
    return best_m.detach(), best_u.detach()


def regret_at(mech: Mechanism, values: torch.Tensor, misreports: torch.Tensor) -> torch.Tensor:
    """``max(u_i(misreport) - u_i(truth), 0)`` per profile and agent, differentiable in the net."""
    truthful, _, _ = utilities(mech, values, values)
    return torch.relu(deviation_utilities(mech, values, misreports) - truthful)


def empirical_regret(
    mech: Mechanism,
    values: torch.Tensor,
    box: SupportBox,
    config: AttackConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PGD regret ``(B, A)`` and the misreports that achieve it."""
    m, _ = find_misreports(mech, values, box, config, generator)
    with torch.no_grad():
        return regret_at(mech, values, m), m
