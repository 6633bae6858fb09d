"""The compiled watermark spec: a pure description of the computation with every default
resolved (no torch here; `run.py` imports this module, never the other way round at import)."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan
from threatlang.backends.choices import AttackMethod
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Smooth,
    Train,
)
from threatlang.ir.properties import AccuracyAtLeast

from .config import (
    ParameterPGDOptions,
    RegularData,
    RemovalKind,
    RemovalOptions,
    WatermarkSmoothOptions,
    WatermarkTrainOptions,
)

#: removal attacks without a `step_size`: Adam at this learning rate
DEFAULT_REMOVAL_LR = 1e-3
#: parameter PGD without a `step_size`: this many times ε / steps per step at each radius
PGD_RELATIVE_STEP = 2.5
#: noise draws per batched evaluation (bounds the batched activations)
MAX_CHUNK = 64


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
    """Parameter-space PGD at every radius; ``step_sizes[i]`` is the step at ``radii[i]``."""

    steps: int
    step_sizes: tuple[float, ...]
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
    chunk: int  # noise draws per batched evaluation

    @property
    def max_sigma(self) -> float:
        """The largest training noise level (resolved at compile: the smoothing σ by default)."""
        return self.train_options.max_sigma

    def describe(self) -> str:
        t, o, s = self.train, self.train_options, self.smooth
        regular = "X only" if o.regular_data is RegularData.TRAIN else "X and the trigger set"
        decay = "" if o.lr_decay_epoch is None else f", lr ÷ 10 from epoch {o.lr_decay_epoch}"
        lines = [
            f"watermark plan for spec {self.spec.name}",
            f"  data: the owner trains on {o.owner_fraction:g} of the training split, the "
            "removal attacker holds the rest",
            f"  trigger set: {o.trigger_size} {o.trigger.value} images labelled {o.target_label}",
            f"  embed (Algorithm 2): {t.epochs} epochs of batch {t.batch_size}, warm-up "
            f"{t.warmup}, SGD lr {t.lr:g} momentum {o.momentum:g} weight decay "
            f"{o.weight_decay:g}{decay}; regular steps on {regular}; trigger batches of "
            f"{o.trigger_batch_size} with noise σ ramped to {self.max_sigma:g} over {o.replay} "
            f"levels × {o.noise_samples} draws ({o.step.value} step)"
            + ("; baseline watermark without noise alongside" if o.baseline else ""),
            f"  certify (Algorithms 3-4): {s.samples} parameter-noise draws at σ={s.sigma:g} "
            f"({self.chunk} per batch), confidence {s.confidence:g}, radii "
            f"{', '.join(f'{r:g}' for r in self.radii)}; the l2 ball is over the parameters: "
            "buffers (BatchNorm running statistics) are held fixed, neither noised nor counted",
        ]
        if self.pgd is not None:
            p = self.pgd
            steps = ", ".join(f"{a:.3g}" for a in p.step_sizes)
            lines.append(
                f"  parameter-space PGD: {p.steps} steps (step {steps}) × {p.restarts} "
                f"restart(s) strictly inside each radius ({p.options.noise_samples} noise draws "
                f"per step), worst test accuracy on {p.options.test_examples} examples"
            )
        for r in self.removals:
            reg = (
                f", weight decay {r.options.regularization:g} for {r.options.reg_epochs} epoch(s)"
                if r.options.regularization > 0
                else ""
            )
            lines.append(
                f"  removal attack {r.label}: {r.epochs} epochs of Adam, batch "
                f"{r.options.batch_size}{reg}"
            )
        lines.append(
            f"  white-box probe during attacks: {self.smooth_options.probe_samples} noise draws; "
            "soundness: no attack inside a radius may push the smoothed trigger accuracy's "
            "upper confidence bound below that radius's certified bound"
        )
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


def compile_plan(spec: Spec, backend) -> WatermarkPlan:
    """Bind each action's options to its declared class (the backend's offers) and resolve
    every default; the backend's ``accepts`` has already vetted the spec."""
    train = next(a for a in spec.actions if isinstance(a, Train))
    smooth = next(a for a in spec.actions if isinstance(a, Smooth))
    radii = tuple(spec.threat.radii)
    removals, pgd = [], None
    for action in spec.actions:
        if not isinstance(action, Attack):
            continue
        opts = backend.options(spec, action)
        if action.method == AttackMethod.PARAMETER_PGD:
            steps = tuple(
                PGD_RELATIVE_STEP * r / action.steps if action.step_size is None
                else action.step_size
                for r in radii
            )  # fmt: skip
            pgd = PGDStep(action.steps, steps, action.restarts, opts)
        else:
            lr = DEFAULT_REMOVAL_LR if action.step_size is None else action.step_size
            removals.append(RemovalStep(_REMOVALS[action.method], lr, action.steps, opts))
    require = spec.require
    train_options = backend.options(spec, train)
    if train_options.max_sigma is None:
        train_options = attrs.evolve(train_options, max_sigma=smooth.sigma)
    return WatermarkPlan(
        spec=spec,
        radii=radii,
        threshold=require.a if isinstance(require, AccuracyAtLeast) else None,
        train=train,
        train_options=train_options,
        smooth=smooth,
        smooth_options=backend.options(spec, smooth),
        removals=tuple(removals),
        pgd=pgd,
        chunk=min(smooth.batch_size, MAX_CHUNK),
    )
