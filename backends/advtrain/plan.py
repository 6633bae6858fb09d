"""The compiled advtrain spec: a pure description of the computation (no torch here)."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan, bind_options
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Evaluate,
    Train,
)
from threatlang.ir.threats import LpBall, Norm, Pyramid

from .config import (
    CORRUPTION_NAMES,
    AdvTrainOptions,
    AttackNorm,
    AttackOptions,
    CorruptionOptions,
    MethodKind,
    MethodSpec,
)
from threatlang.backends.choices import EvaluateKind, Strategy


@attrs.frozen
class AttackStep:
    """One attack of every trained model at each radius."""

    method: str  # ifgsm | pgd
    norm: AttackNorm
    eps: tuple[float, ...]
    steps: int
    step_size: float | None
    restarts: int
    examples: int | None

    def describe(self) -> str:
        radii = ", ".join(f"{e:.4g}" for e in self.eps)
        return f"{self.method} ({self.norm.value}, {self.steps} steps, x{self.restarts}) at {radii}"


@attrs.frozen
class AdvTrainPlan(Plan):
    """Train the methods side by side (or take the given model), evaluate, attack, report."""

    spec: Spec
    train: Train | None
    options: AdvTrainOptions
    methods: tuple[MethodSpec, ...]
    main: str | None  # the label of the spec's own strategy
    scales: tuple[int, ...]
    multipliers: tuple[float, ...]
    radius: float
    corruptions: CorruptionOptions | None
    attacks: tuple[AttackStep, ...]

    @property
    def pat_radius(self) -> float:
        return self.radius if self.options.pat_radius is None else self.options.pat_radius

    @property
    def step_size(self) -> float:
        return self.radius / 80 if self.options.step_size is None else self.options.step_size

    def describe(self) -> str:
        lines = [f"advtrain plan for spec {self.spec.name}"]
        if self.train is not None:
            t, o = self.train, self.options
            lines.append(
                f"  train side by side ({t.epochs} epochs, batch {t.batch_size}, AdamW lr {t.lr:g}, "
                f"wd {o.weight_decay:g}): {', '.join(m.label for m in self.methods)}"
            )
        if any(m.kind is not MethodKind.STANDARD for m in self.methods):
            o = self.options
            lines.append(
                f"  pyramid: scales {list(self.scales)}, multipliers {list(self.multipliers)}; "
                f"UPAT radius {self.radius:.4g} (tau {self.step_size:.3g}), PAT radius "
                f"{self.pat_radius:.4g} (step radius/k); lambda {o.adv_weight:g}"
                + ("; radius schedule (6.5)" if o.radius_schedule else "")
            )
        if self.train is None:
            lines.append("  evaluate the given model (no training)")
        if self.corruptions is not None:
            kinds = self.corruptions.corruptions or CORRUPTION_NAMES
            lines.append(
                f"  corruptions: {len(kinds)} kinds x severities {list(self.corruptions.severities)}"
                " -> corruption accuracy and mCE relative to standard training"
            )
        for a in self.attacks:
            lines.append(f"  attack {a.describe()}")
        return "\n".join(lines)

    def run(self, ctx):
        from .run import run_plan

        return run_plan(self, ctx)


def _main_method(train: Train, o: AdvTrainOptions) -> MethodSpec:
    kind = {
        Strategy.STANDARD: MethodKind.STANDARD,
        Strategy.PYRAMID: MethodKind.PAT,
        Strategy.UNIVERSAL_PYRAMID: MethodKind.UPAT,
    }[train.strategy]
    if kind is MethodKind.STANDARD:
        return MethodSpec(kind)
    return MethodSpec(kind, o.steps, o.clean_loss, o.pyramid)


def _attack(action: Attack, threat, radius: float) -> AttackStep:
    o = bind_options(AttackOptions, action.options, f"attack {action.method}")
    if o.eps:
        eps = o.eps
    elif isinstance(threat, LpBall):
        eps = tuple(threat.radii)
    else:
        eps = (radius,)
    norm = o.norm
    if norm is None:
        norm = (
            AttackNorm.L2
            if isinstance(threat, LpBall) and threat.norm is Norm.L2
            else AttackNorm.LINF
        )
    if action.method == "ifgsm" and norm is not AttackNorm.LINF:
        raise ValueError("ifgsm is an l-inf attack; use pgd for l2")
    return AttackStep(
        action.method, norm, eps, action.steps, action.step_size, action.restarts, o.examples
    )


def compile_plan(spec: Spec) -> AdvTrainPlan:
    """Bind options and decide which models to train; ``accepts`` has vetted the spec."""
    threat = spec.threat
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    options = (
        bind_options(AdvTrainOptions, train.options, f"train {train.strategy}")
        if train is not None
        else AdvTrainOptions()
    )
    if isinstance(threat, Pyramid):
        scales, mults, radius = tuple(threat.scales), tuple(threat.multipliers), threat.radius
    else:
        scales, mults = (1,), (1.0,)
        radius = max(threat.radii) if isinstance(threat, LpBall) else 8 / 255
    methods: list[MethodSpec] = []
    main = None
    if train is not None:
        main_spec = _main_method(train, options)
        main = main_spec.label
        wanted = ["standard", *options.compare, main]
        for name in dict.fromkeys(wanted):
            methods.append(MethodSpec.parse(name))
    corruptions = None
    for action in spec.actions:
        if isinstance(action, Evaluate) and action.kind == EvaluateKind.CORRUPTIONS:
            corruptions = bind_options(CorruptionOptions, action.options, "evaluate corruptions")
    attacks = tuple(_attack(a, threat, radius) for a in spec.actions if isinstance(a, Attack))
    return AdvTrainPlan(
        spec=spec,
        train=train,
        options=options,
        methods=tuple(methods),
        main=main,
        scales=scales,
        multipliers=mults,
        radius=radius,
        corruptions=corruptions,
        attacks=attacks,
    )
