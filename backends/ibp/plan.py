"""A compiled ibp spec: the resolved steps (every default filled in), printable before anything
runs. Torch-free; `IbpPlan.run` imports the run code only when it runs."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import attrs

from threatlang.backends.base import Plan, RunContext, Summary, bind_options
from threatlang.backends.choices import AttackMethod
from threatlang.ir import Spec
from threatlang.ir.actions import Attack, Certify, Train
from threatlang.ir.threats import LpBall, PatchSet

from .ch2_describe import chapter2_lines
from .config import ModelOptions
from .schedule import Schedule
from .steps import AttackStep, CertifyStep, Program, Step, TrainStep

#: patch attacks: step size as a fraction of the patch value range (§2.3.2's IFGSM)
PATCH_STEP = 0.25
#: input-ball attacks: step size is this over the number of steps, as a fraction of the
#: radius (Madry et al.'s 2.5 eps / steps: the walk can cross the ball and come back)
BALL_STEP_SPAN = 2.5

Bind = Callable[[Spec, Any], Any]


@attrs.frozen
class IbpPlan(Plan):
    program: Program

    @property
    def spec(self) -> Spec:
        return self.program.spec

    def describe(self) -> str:
        p = self.program
        s = p.spec
        lines = [f"ibp plan for spec {s.name!r}"]
        if s.model is not None:
            lines.append(f"  model: {s.model.kind.value} {s.model.name} ({_opts(p.model_options)})")
        else:
            lines.append("  model: the module handed to run()")
        lines.append(f"  data: {s.data.source if s.data is not None else 'handed to run()'}")
        t = s.threat
        if isinstance(t, PatchSet):
            shapes = ", ".join(f"{len(m)}x{len(m[0])} mask" for m in (sh.mask() for sh in t.shapes))
            lines.append(
                f"  threat: patches [{shapes}] at {type(t.locations).__name__}, "
                f"values [{t.values.low}, {t.values.high}]"
            )
        elif isinstance(t, LpBall):
            lines.append(
                f"  threat: {t.norm.value} input ball, radii {list(t.radii)}, "
                f"clipped to the input range [{p.domain[0]}, {p.domain[1]}]"
            )
        lines += [_step_line(step, t) for step in p.steps]
        lines += chapter2_lines(s, p.trains)
        return "\n".join(lines)

    def run(self, ctx: RunContext) -> Summary:
        from .run import run_program

        return run_program(self.program, ctx)


def _step_line(step: Step, threat) -> str:
    if isinstance(step, TrainStep):
        k = f"({step.k})" if step.k is not None else ""
        return (
            f"  train {step.strategy}{k}: {step.epochs} epochs, lr {step.lr}, batch "
            f"{step.batch_size}, warm-up {step.warmup} epochs, lr halved every "
            f"{step.halve_every} epochs after it ({_opts(step.options, skip=('halve_every',))})"
        )
    if isinstance(step, AttackStep):
        start = "uniform random start" if step.random_start else "starts at the clean input"
        if isinstance(threat, LpBall):
            where = (
                f"in the {threat.norm.value} ball of radius {threat.eps}, projected and clipped "
                f"to the input range; step {step.step_size:.4g} x radius"
            )
        else:
            where = f"locations {step.search}; step {step.step_size:.4g} x value range"
        return (
            f"  attack {step.method}: {step.steps} steps x {step.restarts} restarts, {start}, "
            f"{where} ({_opts(step.options)})"
        )
    if isinstance(threat, LpBall):
        what = f"worst margin over the {threat.norm.value} ball at each radius"
    else:
        what = "worst margin over all placements"
    return f"  certify {step.method}: {what} ({_opts(step.options)})"


def _opts(options: Any, skip: tuple[str, ...] = ()) -> str:
    """`name value` for every field of an options object (the resolved defaults included)."""
    parts = []
    for f in attrs.fields(type(options)):
        if f.name in skip:
            continue
        v = getattr(options, f.name)
        parts.append(f"{f.name} {v.value if isinstance(v, enum.Enum) else v}")
    return ", ".join(parts) or "no options"


def compile_plan(spec: Spec, bind: Bind) -> IbpPlan:
    """Resolve every step of `spec`; `bind(spec, action)` binds an action's options to the
    class the backend declares for it (`Backend.options`)."""
    steps: list[Step] = []
    for a in spec.actions:
        if isinstance(a, Train):
            steps.append(_train(a, bind(spec, a)))
        elif isinstance(a, Certify):
            steps.append(CertifyStep(a.method, bind(spec, a)))
        elif isinstance(a, Attack):
            steps.append(_attack(a, bind(spec, a), isinstance(spec.threat, LpBall)))
    model_opts = (
        bind_options(ModelOptions, spec.model.options, "model") if spec.model else ModelOptions()
    )
    domain = (spec.domain.low, spec.domain.high) if spec.domain is not None else (0.0, 1.0)
    return IbpPlan(Program(spec, model_opts, tuple(steps), domain))


def _train(a: Train, options) -> TrainStep:
    halve = options.halve_every
    if halve is None:
        halve = Schedule.chapter(a.epochs).halve_every
    return TrainStep(a.strategy, a.k, a.epochs, a.lr, a.batch_size, a.warmup, halve, options)


def _attack(a: Attack, options, ball: bool) -> AttackStep:
    if ball:
        step = a.step_size if a.step_size is not None else BALL_STEP_SPAN / a.steps
        search = None
    else:
        step = a.step_size if a.step_size is not None else PATCH_STEP
        search = a.locations.value if a.locations is not None else "anywhere"
    random_start = a.method == AttackMethod.PGD
    return AttackStep(a.method, a.steps, step, a.restarts, search, random_start, options)
