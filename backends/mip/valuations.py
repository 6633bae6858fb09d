"""Valuation profiles on the bid support box ``[low, high]^(agents x items)`` (additive bidders)."""

from __future__ import annotations

import attrs
import torch


@attrs.frozen
class SupportBox:
    """The support of every agent's valuation: each bid lies in ``[low, high]``."""

    agents: int = attrs.field(validator=attrs.validators.ge(1))
    items: int = attrs.field(validator=attrs.validators.ge(1))
    low: float = 0.0
    high: float = 1.0

    def __attrs_post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"support needs low < high, got [{self.low}, {self.high}]")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.agents, self.items)

    def clamp(self, bids: torch.Tensor) -> torch.Tensor:
        return bids.clamp(self.low, self.high)


def sample_profiles(
    box: SupportBox,
    n: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` profiles drawn uniformly from the support: shape ``(n, agents, items)``, on the
    generator's device (draws are made where they are used; no host copy)."""
    shape = (n, box.agents, box.items)
    u = torch.rand(shape, generator=generator, dtype=dtype, device=generator.device)
    return box.low + (box.high - box.low) * u


def replace_agent(profiles: torch.Tensor, agent: int, bids: torch.Tensor) -> torch.Tensor:
    """Profiles with ``agent``'s row replaced by ``bids`` (shape ``(..., items)``), others kept."""
    out = profiles.clone()
    out[..., agent, :] = bids
    return out


def deviation_profiles(values: torch.Tensor, misreports: torch.Tensor) -> torch.Tensor:
    """``(..., A, A, items)``: entry ``[..., i, :, :]`` is the profile where only agent ``i``
    reports ``misreports[..., i, :]`` and every other agent its value."""
    agents = values.shape[-2]
    if agents == 1:
        return misreports.unsqueeze(-2)
    eye = torch.eye(agents, dtype=values.dtype, device=values.device)[:, :, None]
    return values.unsqueeze(-3) * (1 - eye) + misreports.unsqueeze(-2) * eye
