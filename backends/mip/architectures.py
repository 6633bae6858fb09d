"""Builtin architecture `regretnet` for `model regretnet { hidden 128 layers 1 payment free }`."""

from __future__ import annotations

from .mechanisms import AllocationKind, Mechanism, MechanismConfig, PaymentKind


def regretnet(
    input_shape: tuple[int, ...],
    num_classes: int | None = None,
    hidden: int = 128,
    layers: int = 1,
    payment: str = "fractional",
    allocation: str = "sparsemax",
    generator=None,
) -> Mechanism:
    """A mechanism for ``input_shape = (agents, items)``; ``num_classes`` is unused (agents)."""
    agents, items = (int(s) for s in input_shape[-2:])
    cfg = MechanismConfig(
        agents,
        items,
        hidden=(int(hidden),) * int(layers),
        allocation=AllocationKind(allocation),
        payment=PaymentKind(payment),
    )
    return Mechanism(cfg, generator=generator)
