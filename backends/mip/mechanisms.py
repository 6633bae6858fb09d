"""RegretNet-style auction mechanisms (dissertation §4.2.2, §4.3).

A shared ReLU trunk reads all bids; an allocation head gives, per item, a distribution over the
agents plus a dummy "not allocated" entry (sparsemax, certifiable; or softmax for the original
RegretNet teacher); a payment head gives either a fractional payment (a sigmoid-like fraction of
the value of the allocation at the reported bids: IR by construction, bilinear in a MIP) or a
free payment (IR only through the training penalty; linear in a MIP).
"""

from __future__ import annotations

import enum

import attrs
import torch
from torch import nn

from .sparsemax import sparsemax


class AllocationKind(enum.Enum):
    SPARSEMAX = "sparsemax"
    SOFTMAX = "softmax"


class PaymentKind(enum.Enum):
    FRACTIONAL = "fractional"  # clamp(raw + 1/2, 0, 1) * <a_i, b_i>: piecewise linear, certifiable
    FRACTIONAL_SIGMOID = "fractional_sigmoid"  # sigmoid(raw) * <a_i, b_i>: original RegretNet
    FREE = "free"  # raw payment (clipped at 0 once `clip_payments` is set after training)


@attrs.frozen
class MechanismConfig:
    agents: int
    items: int
    hidden: tuple[int, ...] = attrs.field(default=(128,), converter=tuple)
    allocation: AllocationKind = AllocationKind.SPARSEMAX
    payment: PaymentKind = PaymentKind.FRACTIONAL

    @property
    def certifiable(self) -> bool:
        return (
            self.allocation is AllocationKind.SPARSEMAX
            and self.payment is not PaymentKind.FRACTIONAL_SIGMOID
        )


class Mechanism(nn.Module):
    """``forward(bids (B, agents, items)) -> (allocation (B, agents, items), payment (B, agents))``."""

    def __init__(self, config: MechanismConfig, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.config = config
        self.clip_payments = False
        sizes = (config.agents * config.items, *config.hidden)
        self.trunk = nn.ModuleList(
            nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        )
        self.alloc_head = nn.Linear(sizes[-1], (config.agents + 1) * config.items)
        self.pay_head = nn.Linear(sizes[-1], config.agents)
        if generator is not None:
            for p in self.parameters():
                bound = 1.0 / max(1, p.shape[-1]) ** 0.5 if p.dim() > 1 else 0.1
                with torch.no_grad():
                    p.uniform_(-bound, bound, generator=generator)

    def hidden(self, bids: torch.Tensor) -> torch.Tensor:
        h = bids.flatten(start_dim=-2)
        for layer in self.trunk:
            h = torch.relu(layer(h))
        return h

    def heads(self, bids: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        logits = self.alloc_head(h).unflatten(-1, (cfg.agents + 1, cfg.items))
        if cfg.allocation is AllocationKind.SPARSEMAX:
            alloc = sparsemax(logits, dim=-2)[..., : cfg.agents, :]
        else:
            alloc = torch.softmax(logits, dim=-2)[..., : cfg.agents, :]
        raw = self.pay_head(h)
        if cfg.payment is PaymentKind.FREE:
            pay = torch.relu(raw) if self.clip_payments else raw
        else:
            frac = torch.sigmoid(raw) if cfg.payment is PaymentKind.FRACTIONAL_SIGMOID else None
            frac = torch.clamp(raw + 0.5, 0.0, 1.0) if frac is None else frac
            pay = frac * (alloc * bids).sum(dim=-1)
        return alloc, pay

    def forward(self, bids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(bids, self.hidden(bids))

    def affine_layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The trunk's affine maps, then both heads stacked as one: ``[(W, b), ...]`` (detached)."""
        layers = [(lin.weight.detach(), lin.bias.detach()) for lin in self.trunk]
        w = torch.cat([self.alloc_head.weight, self.pay_head.weight]).detach()
        b = torch.cat([self.alloc_head.bias, self.pay_head.bias]).detach()
        return [*layers, (w, b)]


def utilities(
    mechanism: Mechanism, bids: torch.Tensor, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Additive utilities ``u_i = sum_j a_ij v_ij - p_i`` of every agent at ``bids``.

    Returns ``(utility (B, agents), allocation, payment)``.
    """
    alloc, pay = mechanism(bids)
    return (alloc * values).sum(dim=-1) - pay, alloc, pay
