"""Empirical regret: misreports found by projected gradient ascent (RegretNet, §4.2.2.2).

Every agent misreports in parallel, from the truthful bid and from random restarts; the best
utility seen over all steps is kept, so the empirical regret is a true lower bound on the
regret (eq. 4.1) that the MIP certifies from above.
"""

from __future__ import annotations

import attrs
import torch

from .mechanisms import Mechanism, utilities
from .valuations import SupportBox


@attrs.frozen
class AttackConfig:
    steps: int = 25
    lr: float = 0.02
    restarts: int = 1  # restart 0 starts at the truthful bid, the others uniformly at random


def _deviations(values: torch.Tensor, misreports: torch.Tensor) -> torch.Tensor:
    """``(..., A, A, items)``: entry ``[..., i]`` is the profile where only agent ``i`` lies."""
    agents = values.shape[-2]
    eye = torch.eye(agents, dtype=values.dtype, device=values.device)[:, :, None]
    return values.unsqueeze(-3) * (1 - eye) + misreports.unsqueeze(-2) * eye


def deviation_utilities(
    mech: Mechanism, values: torch.Tensor, misreports: torch.Tensor
) -> torch.Tensor:
    """Utility of each agent ``i`` when it alone reports ``misreports[..., i, :]``: ``(..., A)``."""
    profiles = _deviations(values, misreports)
    u, _, _ = utilities(mech, profiles, values.unsqueeze(-3).expand_as(profiles))
    return torch.diagonal(u, dim1=-2, dim2=-1)


def find_misreports(
    mech: Mechanism,
    values: torch.Tensor,
    box: SupportBox,
    config: AttackConfig,
    generator: torch.Generator,
    extra_starts: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best misreports ``(B, A, items)`` and their utilities ``(B, A)`` (no grad to the net).

    Ascent starts at the truthful bids, at ``extra_starts`` (e.g. the best point of a grid) and
    at ``restarts - 1`` uniform random bids; the best utility seen at any step is kept."""
    starts = [values, *(extra_starts or [])]
    for _ in range(config.restarts - 1):
        starts.append(
            box.low
            + (box.high - box.low)
            * torch.rand(
                values.shape, generator=generator, dtype=values.dtype, device=values.device
            )
        )
    m = torch.stack(starts).detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([m], lr=config.lr)
    with torch.no_grad():
        best_u = deviation_utilities(mech, values, m).max(dim=0)
        best_m = torch.gather(m, 0, best_u.indices[None, ..., None].expand(1, *m.shape[1:]))[0]
        best_u = best_u.values
    for _ in range(config.steps):
        opt.zero_grad()
        u = deviation_utilities(mech, values, m)
        (-u.sum()).backward()
        opt.step()
        with torch.no_grad():
            m.clamp_(box.low, box.high)
            u = deviation_utilities(mech, values, m)
            cand = u.max(dim=0)
            better = cand.values > best_u
            cand_m = torch.gather(m, 0, cand.indices[None, ..., None].expand(1, *m.shape[1:]))[0]
            best_m = torch.where(better[..., None], cand_m, best_m)
            best_u = torch.where(better, cand.values, best_u)
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
