"""Run-time glue for the rest of chapter 2: preprocessing defences and shape transfer.

Called from :mod:`.run` so a spec's ``preprocess lgs|dw`` blocks sit in front of the model
for predictions and attacks, ``attack bpda`` is the strong adversary through them, and
``evaluate shape_transfer`` adds a Table 2.4-style table.
"""

from __future__ import annotations

from typing import Any

import attrs
import torch
from torch import Tensor, nn

from threatlang.backends.base import Table, bind_options
from threatlang.backends.choices import AttackMethod, EvaluateKind
from threatlang.ir import Spec
from threatlang.ir.actions import Evaluate
from threatlang.ir.refs import (
    Preprocess,
    PreprocessKind,
)

from .attack import AttackConfig, AttackResult, patch_attack
from .certify import CertifyConfig
from .ch2_describe import PREPROCESS_OPTIONS
from .defenses import (
    Defended,
    DigitalWatermark,
    GradientMode,
    LocalGradientSmoothing,
)
from .patches import PatchThreat
from .shape_transfer import NamedShape, by_kind, certify_shapes
from .threat import patch_threat


class _Chain(nn.Module):
    def __init__(self, parts: list[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)

    def forward(self, x: Tensor) -> Tensor:
        for p in self.parts:
            x = p(x)
        return x


def transform(spec: Spec, model: nn.Module) -> nn.Module | None:
    """The spec's preprocessing chain (in order), or None when it has none."""
    parts: list[nn.Module] = []
    for p in spec.preprocess:
        cfg = bind_options(PREPROCESS_OPTIONS[p.kind], p.options, f"preprocess {p.kind.value}")
        parts.append(_build(p, cfg, model))
    return _Chain(parts) if parts else None


def _build(p: Preprocess, cfg, model: nn.Module) -> nn.Module:
    if p.kind is PreprocessKind.LGS:
        return LocalGradientSmoothing(cfg)
    return DigitalWatermark(model, cfg)


def scored_model(spec: Spec, model: nn.Module) -> nn.Module:
    """What predictions are scored on: the model behind its defences."""
    t = transform(spec, model)
    return model if t is None else Defended(t, model).eval()


def _mode(spec: Spec) -> GradientMode:
    """Strong adversary's backward pass: exact through LGS, identity (BPDA) once DW is in."""
    dw = any(p.kind is PreprocessKind.DW for p in spec.preprocess)
    return GradientMode.BPDA if dw else GradientMode.EXACT


def attack(
    spec: Spec,
    method: AttackMethod,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    cfg: AttackConfig,
    gen: torch.Generator,
) -> AttackResult:
    """Without preprocessing: the plain patch attack. With it, ``ifgsm``/``pgd`` are the weak
    adversary (optimised on the bare model) and ``bpda`` the strong one (through the defence);
    either way success is re-scored on the defended pipeline, so a reported counterexample
    really fools it."""
    t = transform(spec, model)
    if t is None:
        return patch_attack(model, x, y, threat, cfg, gen=gen)
    if method == AttackMethod.BPDA:
        target = Defended(t, model, _mode(spec)).eval()
    else:
        target = model
    res = patch_attack(target, x, y, threat, cfg, gen=gen)
    with torch.no_grad():
        fooled = Defended(t, model).eval()(res.adversarial).argmax(1) != y
    return attrs.evolve(res, success=fooled)


def _kind(shape) -> str:
    return type(shape).__name__.lower()


def shape_transfer(
    spec: Spec,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    train_square: int | None,
    how: Any,
) -> tuple[dict[str, float], Table] | None:
    """The Table 2.4 row when the spec asks for ``evaluate shape_transfer``: per shape kind the
    worst certified fraction, certified as the spec's certify step says (`how`, a
    :class:`.work.PatchCertify`; IBP when the spec has no certify step)."""
    if not any(
        isinstance(a, Evaluate) and a.kind == EvaluateKind.SHAPE_TRANSFER for a in spec.actions
    ):
        return None
    pt = patch_threat(spec.threat)
    shapes = [
        NamedShape(_kind(s), _describe(s), m)
        for s, m in zip(spec.threat.shapes, pt.masks, strict=True)
    ]
    if train_square is not None:
        sq = patch_threat(spec.threat, train_square).masks[0]
        shapes.insert(0, NamedShape("square", f"square({train_square})", sq))
    cfg = how.config if how is not None else CertifyConfig()
    results = certify_shapes(model, x, y, shapes, pt.locations, pt.low, pt.high, cfg)
    rows = by_kind(results)
    table = Table(
        f"{spec.name}: certified accuracy per shape (worst of each kind, Table 2.4)",
        ("shape", "pixels", "certified", "worst of"),
        [
            (r.kind, r.worst.shape.pixels, f"{r.worst.certified:.1%}", r.worst.shape.name)
            for r in rows
        ],
    )
    return {r.kind: round(r.worst.certified, 4) for r in rows}, table


def _describe(shape) -> str:
    fields = [f.name for f in attrs.fields(type(shape)) if f.name != "span"]
    vals = []
    for f in fields:
        v = getattr(shape, f)
        vals.append(v.value if hasattr(v, "value") else ("mask" if f == "rows" else v))
    return f"{_kind(shape)}({', '.join(str(v) for v in vals)})"
