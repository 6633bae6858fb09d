"""The compiled watermark spec: a pure description of the computation (no torch here)."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan, bind_options
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Smooth,
    Train,
)
from threatlang.ir.properties import AccuracyAtLeast

from .config import (
    ParameterPGDOptions,
    RemovalKind,
    RemovalOptions,
    WatermarkSmoothOptions,
    WatermarkTrainOptions,
)
from threatlang.backends.choices import AttackMethod


@attrs.frozen
class RemovalStep:
    """One removal attack: ``steps`` epochs of Adam at learning rate ``step_size``."""

    kind: RemovalKind
    lr: float
    epochs: int
    options: RemovalOptions

    @property
    def label(self) -> str:
        reg = f"+reg{self.options.regularization:g}" if self.options.regularization > 0 else ""
        return f"{self.kind.value}{reg} lr={self.lr:g}"


@attrs.frozen
class PGDStep:
    steps: int
    step_size: float | None
    restarts: int
    options: ParameterPGDOptions


@attrs.frozen
class WatermarkPlan(Plan):
    """Embed baseline and certified watermarks, certify per radius, attack, report."""

    spec: Spec
    radii: tuple[float, ...]
    threshold: float | None
    train: Train
    train_options: WatermarkTrainOptions
    smooth: Smooth
    smooth_options: WatermarkSmoothOptions
    removals: tuple[RemovalStep, ...]
    pgd: PGDStep | None

    @property
    def max_sigma(self) -> float:
        chosen = self.train_options.max_sigma
        return self.smooth.sigma if chosen is None else chosen

    def describe(self) -> str:
        t, o, s = self.train, self.train_options, self.smooth
        lines = [
            f"watermark plan for spec {self.spec.name}",
            f"  trigger set: {o.trigger_size} {o.trigger.value} images labelled {o.target_label}",
            f"  embed (Algorithm 2): {t.epochs} epochs, warm-up {t.warmup}, lr {t.lr:g}, noise "
            f"σ ramped to {self.max_sigma:g} over {o.replay} levels × {o.noise_samples} draws"
            + ("; baseline watermark without noise alongside" if o.baseline else ""),
            f"  certify (Algorithms 3-4): {s.samples} parameter-noise draws at σ={s.sigma:g}, "
            f"confidence {s.confidence:g}, radii {', '.join(f'{r:g}' for r in self.radii)}",
        ]
        if self.pgd is not None:
            lines.append(
                f"  parameter-space PGD: {self.pgd.steps} steps × {self.pgd.restarts} restarts "
                f"within each radius ({self.pgd.options.noise_samples} noise draws per step)"
            )
        for r in self.removals:
            lines.append(f"  removal attack {r.label}: {r.epochs} epochs")
        if self.threshold is not None:
            lines.append(f"  require: smoothed trigger accuracy >= {self.threshold:g}")
        return "\n".join(lines)

    def run(self, ctx):
        from .run import run_plan

        return run_plan(self, ctx)


_REMOVALS = {
    AttackMethod.FINETUNE: RemovalKind.FINETUNE,
    AttackMethod.DISTILL_HARD: RemovalKind.DISTILL_HARD,
    AttackMethod.DISTILL_SOFT: RemovalKind.DISTILL_SOFT,
}


def compile_plan(spec: Spec) -> WatermarkPlan:
    """Bind each action's options; the backend's ``accepts`` has already vetted the spec."""
    train = next(a for a in spec.actions if isinstance(a, Train))
    smooth = next(a for a in spec.actions if isinstance(a, Smooth))
    removals, pgd = [], None
    for action in spec.actions:
        if not isinstance(action, Attack):
            continue
        if action.method == AttackMethod.PARAMETER_PGD:
            opts = bind_options(ParameterPGDOptions, action.options, "attack parameter_pgd")
            pgd = PGDStep(action.steps, action.step_size, action.restarts, opts)
        else:
            opts = bind_options(RemovalOptions, action.options, f"attack {action.method}")
            lr = action.step_size if action.step_size is not None else 1e-3
            removals.append(RemovalStep(_REMOVALS[action.method], lr, action.steps, opts))
    require = spec.require
    return WatermarkPlan(
        spec=spec,
        radii=tuple(spec.threat.radii),
        threshold=require.a if isinstance(require, AccuracyAtLeast) else None,
        train=train,
        train_options=bind_options(WatermarkTrainOptions, train.options, "train watermark"),
        smooth=smooth,
        smooth_options=bind_options(WatermarkSmoothOptions, smooth.options, "smooth median"),
        removals=tuple(removals),
        pgd=pgd,
    )
