"""A compiled ibp spec: the bound option objects and the steps, printable before anything runs."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan, RunContext, Summary, bind_options
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Certify,
    Train,
)
from threatlang.ir.threats import LpBall, PatchSet

from .ch2_describe import chapter2_lines
from .config import AttackOptions, CertifyOptions, ModelOptions, TrainOptions


@attrs.frozen
class TrainStep:
    action: Train
    options: TrainOptions


@attrs.frozen
class CertifyStep:
    action: Certify
    options: CertifyOptions


@attrs.frozen
class AttackStep:
    action: Attack
    options: AttackOptions


Step = TrainStep | CertifyStep | AttackStep


@attrs.frozen
class IbpPlan(Plan):
    spec: Spec
    model_options: ModelOptions
    steps: tuple[Step, ...]

    def describe(self) -> str:
        s = self.spec
        lines = [f"ibp plan for spec {s.name!r}"]
        if s.model is not None:
            lines.append(
                f"  model: {s.model.kind.value} {s.model.name} (width {self.model_options.width})"
            )
        if s.data is not None:
            lines.append(f"  data: {s.data.source}")
        t = s.threat
        if isinstance(t, PatchSet):
            shapes = ", ".join(f"{len(m)}x{len(m[0])} mask" for m in (sh.mask() for sh in t.shapes))
            lines.append(
                f"  threat: patches [{shapes}] at {type(t.locations).__name__}, values [{t.values.low}, {t.values.high}]"
            )
        elif isinstance(t, LpBall):
            lines.append(f"  threat: {t.norm.value} input ball, radii {list(t.radii)}")
        for step in self.steps:
            a = step.action
            if isinstance(step, TrainStep):
                k = f"({a.k})" if a.k is not None else ""
                lines.append(
                    f"  train {a.strategy}{k}: {a.epochs} epochs, lr {a.lr}, batch {a.batch_size}, warm-up {a.warmup} epochs"
                )
            elif isinstance(step, CertifyStep):
                o = step.options
                lines.append(
                    f"  certify {a.method}: worst margin over all placements, chunks of {o.chunk}, engine {o.engine.value}"
                )
            else:
                where = a.locations.value if a.locations is not None else "anywhere"
                lines.append(
                    f"  attack {a.method}: {a.steps} steps x {a.restarts} restarts, locations {where}"
                )
        lines += chapter2_lines(s)
        return "\n".join(lines)

    def run(self, ctx: RunContext) -> Summary:
        from .run import run_plan

        return run_plan(self, ctx)


def compile_plan(spec: Spec) -> IbpPlan:
    steps: list[Step] = []
    for a in spec.actions:
        if isinstance(a, Train):
            steps.append(TrainStep(a, bind_options(TrainOptions, a.options, "train")))
        elif isinstance(a, Certify):
            steps.append(CertifyStep(a, bind_options(CertifyOptions, a.options, "certify")))
        elif isinstance(a, Attack):
            steps.append(AttackStep(a, bind_options(AttackOptions, a.options, "attack")))
    model_opts = (
        bind_options(ModelOptions, spec.model.options, "model") if spec.model else ModelOptions()
    )
    return IbpPlan(spec, model_opts, tuple(steps))
