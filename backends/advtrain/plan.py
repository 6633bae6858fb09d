"""The compiled advtrain spec: a pure description of the computation (no torch here).

Every default is resolved here — radii, UPAT's step size, the schedule's epochs, the warm-up,
the corruption suite and the reference model's cache, each attack's radii and norm — so
`describe()` (`threatlang compile --emit plan`) shows exactly what `run` computes.
"""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan
from threatlang.backends.choices import EvaluateKind, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Evaluate,
    Train,
)
from threatlang.ir.threats import LpBall, Norm, Pyramid

from .config import (
    AdvTrainOptions,
    AttackNorm,
    AttackOptions,
    CorruptionOptions,
    MethodKind,
    MethodSpec,
    default_cache_dir,
)


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
        if self.step_size is not None:
            step = f"step {self.step_size:.4g}"
        else:  # the attacks' own rules (Kurakin et al.; Madry et al.)
            step = "step eps/steps" if self.method == "ifgsm" else "step 2.5 eps/steps"
        where = (
            "every test image" if self.examples is None else f"first {self.examples} test images"
        )
        return (
            f"{self.method} ({self.norm.value}, {self.steps} steps, {step}, x{self.restarts}) "
            f"at {radii} on the {where}"
        )


@attrs.frozen
class TrainStep:
    """The shared training recipe, resolved (AdamW, linear warm-up then cosine decay)."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_epochs: int
    augment: bool


@attrs.frozen
class CorruptionStep:
    """The corruption suite and the fixed reference model that normalises mCE."""

    corruptions: tuple[str, ...]
    severities: tuple[int, ...]
    seed: int
    batch_size: int
    reference_cache: str


@attrs.frozen
class AdvTrainPlan(Plan):
    """Train the methods side by side (or take the given model), evaluate, attack, report."""

    spec: Spec
    train: TrainStep | None
    options: AdvTrainOptions
    methods: tuple[MethodSpec, ...]
    main: str | None  # the label of the spec's own strategy
    scales: tuple[int, ...]
    multipliers: tuple[float, ...]
    radius: float  # UPAT's radius (the threat's)
    pat_radius: float
    step_size: float  # UPAT's tau
    schedule_start: int  # epoch where the (6.5) decay begins
    radius_end: float | None  # where it ends (None: 10% of each method's radius)
    corruptions: CorruptionStep | None
    attacks: tuple[AttackStep, ...]

    def method_radius(self, method: MethodSpec) -> float:
        if method.radius is not None:
            return method.radius
        return self.pat_radius if method.kind is MethodKind.PAT else self.radius

    def describe(self) -> str:
        lines = [f"advtrain plan for spec {self.spec.name}"]
        o = self.options
        if self.train is not None:
            t = self.train
            lines.append(
                f"  train side by side ({t.epochs} epochs, batch {t.batch_size}, AdamW lr "
                f"{t.lr:g}, wd {t.weight_decay:g}, {t.warmup_epochs}-epoch linear warm-up then "
                f"cosine, {'2-pixel shifts' if t.augment else 'no augmentation'}, "
                f"{o.threads} torch thread(s)): {', '.join(m.label for m in self.methods)}"
            )
        if any(m.kind is not MethodKind.STANDARD for m in self.methods):
            end = "10% of each radius" if self.radius_end is None else f"{self.radius_end:.4g}"
            lines.append(
                f"  pyramid: scales {list(self.scales)}, multipliers {list(self.multipliers)}; "
                f"UPAT radius {self.radius:.4g} (tau {self.step_size:.3g}), PAT radius "
                f"{self.pat_radius:.4g} (step radius/k); lambda {o.adv_weight:g}; "
                + (
                    f"radius schedule (6.5) for every method from epoch {self.schedule_start} "
                    f"to {end}"
                    if o.radius_schedule
                    else f"constant radius (the _schedule variants decay from epoch "
                    f"{self.schedule_start} to {end})"
                )
            )
        if o.radii:
            lines.append(
                "  radius sweep (Tables 6.3/6.4): every adversarial method at "
                + ", ".join(f"{r * 255:g}/255" for r in o.radii)
            )
        if self.train is None:
            lines.append("  evaluate the given model (no training)")
        if self.corruptions is not None:
            c = self.corruptions
            lines.append(
                f"  corruptions: {len(c.corruptions)} kinds ({', '.join(c.corruptions)}) x "
                f"severities {list(c.severities)}, seed {c.seed} -> corruption accuracy and mCE "
                f"normalised by the fixed reference CNN (cached in {c.reference_cache})"
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


def _attack(action: Attack, options: AttackOptions, threat, radius: float) -> AttackStep:
    o = options
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


def _methods(train: Train, options: AdvTrainOptions) -> tuple[tuple[MethodSpec, ...], str]:
    main = _main_method(train, options)
    wanted = [MethodSpec.parse(n) for n in dict.fromkeys(["standard", *options.compare])]
    if main.label not in [m.label for m in wanted]:
        wanted.append(main)
    if not options.radii:
        return tuple(wanted), main.label
    out = []
    for m in wanted:  # the sweep: every adversarial method once per radius
        if m.kind is MethodKind.STANDARD or m.radius is not None:
            out.append(m)
        else:
            out += [attrs.evolve(m, radius=r) for r in options.radii]
    main_label = attrs.evolve(main, radius=options.radii[-1]).label
    return tuple(dict.fromkeys(out)), main_label


def compile_plan(spec: Spec, backend) -> AdvTrainPlan:
    """Bind options through the backend's declarations and resolve every default."""
    threat = spec.threat
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    options = backend.options(spec, train) if train is not None else AdvTrainOptions()
    if isinstance(threat, Pyramid):
        scales, mults, radius = tuple(threat.scales), tuple(threat.multipliers), threat.radius
    else:
        scales, mults = (1,), (1.0,)
        radius = max(threat.radii) if isinstance(threat, LpBall) else 8 / 255
    methods: tuple[MethodSpec, ...] = ()
    main = None
    step = None
    epochs = 1
    if train is not None:
        methods, main = _methods(train, options)
        epochs = train.epochs
        step = TrainStep(
            train.epochs, train.batch_size, train.lr, options.weight_decay,
            max(train.warmup, 1), options.augment,
        )  # fmt: skip
    start = round(0.1 * epochs) if options.schedule_start is None else options.schedule_start
    corruptions = None
    for action in spec.actions:
        if isinstance(action, Evaluate) and action.kind == EvaluateKind.CORRUPTIONS:
            c: CorruptionOptions = backend.options(spec, action)
            corruptions = CorruptionStep(
                tuple(c.corruptions), tuple(c.severities), c.seed, c.batch_size,
                c.reference_cache or default_cache_dir(),
            )  # fmt: skip
    attacks = tuple(
        _attack(a, backend.options(spec, a), threat, radius)
        for a in spec.actions
        if isinstance(a, Attack)
    )
    return AdvTrainPlan(
        spec=spec,
        train=step,
        options=options,
        methods=methods,
        main=main,
        scales=scales,
        multipliers=mults,
        radius=radius,
        pat_radius=radius if options.pat_radius is None else options.pat_radius,
        step_size=radius / 80 if options.step_size is None else options.step_size,
        schedule_start=start,
        radius_end=options.radius_end,
        corruptions=corruptions,
        attacks=attacks,
    )
