"""Plan lines for the chapter-2 additions (torch-free: `threatlang compile` imports this)."""

from __future__ import annotations

from threatlang.backends.choices import EvaluateKind, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Evaluate,
    Train,
)


def chapter2_lines(spec: Spec) -> list[str]:
    lines = []
    for p in spec.preprocess:
        opts = ", ".join(f"{o.name} {o.value}" for o in p.options) or "defaults"
        lines.append(f"  preprocess {p.kind.value} ({opts}): in front of the model for predictions")
        lines.append(
            "    and attacks; ifgsm/pgd ignore it (weak), bpda attacks through it (strong)"
        )
    trains = [a for a in spec.actions if isinstance(a, Train)]
    for a in trains:
        if a.strategy == Strategy.POOLED_PATCH:
            pool = next((o.value for o in a.options if o.name == "pool"), 2)
            lines.append(f"  pooled_patch: hull of adjacent blocks of placements, pool {pool}")
        if a.strategy == Strategy.GUIDED_PATCH:
            lines.append(f"  guided_patch({a.k}): U-net margin map, {a.k} sampled placements")
    if len(trains) > 1:
        lines.append(f"  compare: {len(trains)} fresh models from one seed, one row each")
    if any(isinstance(a, Evaluate) and a.kind == EvaluateKind.SHAPE_TRANSFER for a in spec.actions):
        lines.append("  evaluate shape_transfer: certify each shape alone, worst per kind")
    return lines
