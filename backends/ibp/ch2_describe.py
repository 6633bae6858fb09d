"""Plan lines for the chapter-2 additions (torch-free: `threatlang compile` imports this)."""

from __future__ import annotations

import enum

import attrs

from threatlang.backends.base import bind_options
from threatlang.backends.choices import EvaluateKind, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import Evaluate
from threatlang.ir.refs import PreprocessKind

from .defense_options import DWConfig, LGSConfig
from .steps import TrainStep

#: options a `preprocess` block binds to, per kind
PREPROCESS_OPTIONS = {PreprocessKind.LGS: LGSConfig, PreprocessKind.DW: DWConfig}


def chapter2_lines(spec: Spec, trains: tuple[TrainStep, ...]) -> list[str]:
    lines = []
    for p in spec.preprocess:
        cfg = bind_options(PREPROCESS_OPTIONS[p.kind], p.options, f"preprocess {p.kind.value}")
        opts = ", ".join(
            f"{f.name} {_value(getattr(cfg, f.name))}" for f in attrs.fields(type(cfg))
        )
        lines.append(f"  preprocess {p.kind.value} ({opts}): in front of the model for predictions")
        lines.append(
            "    and attacks; ifgsm/pgd ignore it (weak), bpda attacks through it (strong)"
        )
    for t in trains:
        if t.strategy == Strategy.POOLED_PATCH:
            pool = "-".join(str(b) for b in t.options.pool)
            lines.append(f"  pooled_patch: hull of adjacent blocks of placements, pool {pool}")
        if t.strategy == Strategy.GUIDED_PATCH:
            lines.append(
                f"  guided_patch({t.k}): U-net margin map, {t.k} sampled placements for labels "
                "other than the image's own"
            )
    if len(trains) > 1:
        lines.append(f"  compare: {len(trains)} fresh models from one seed, one row each")
    if any(isinstance(a, Evaluate) and a.kind == EvaluateKind.SHAPE_TRANSFER for a in spec.actions):
        lines.append(
            "  evaluate shape_transfer: certify each shape alone as the certify step does "
            "(IBP without one), worst per kind"
        )
    return lines


def _value(v):
    return v.value if isinstance(v, enum.Enum) else v
