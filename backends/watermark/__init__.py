"""The `watermark` backend: certified watermarks by smoothing over the parameters (chapter 5).

Light on purpose: declares capabilities and compiles a spec to a plan without importing torch;
the plan imports the compute modules when it runs.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Unsupported, option_problems
from threatlang.ir import Spec
from threatlang.ir.actions import Attack, AttackMethod, Smooth, SmoothKind, Strategy, Train
from threatlang.ir.properties import AccuracyAtLeast
from threatlang.ir.threats import LpBall, Norm, Target

from .config import (
    ParameterPGDOptions,
    RemovalOptions,
    WatermarkSmoothOptions,
    WatermarkTrainOptions,
)

__all__ = ["BACKEND", "WatermarkBackend"]


class WatermarkBackend(Backend):
    """Embeds a trigger-set watermark with parameter noise (Algorithm 2) and certifies its median
    smoothed trigger accuracy over an l2 ball around the parameters (Corollary 5.0.1)."""

    name: ClassVar[str] = "watermark"
    threats: ClassVar[frozenset[type]] = frozenset({LpBall})
    properties: ClassVar[frozenset[type]] = frozenset({AccuracyAtLeast})
    actions: ClassVar = {
        Train: frozenset({Strategy.WATERMARK}),
        Smooth: frozenset({SmoothKind.MEDIAN}),
        Attack: frozenset(
            {
                AttackMethod.FINETUNE,
                AttackMethod.DISTILL_HARD,
                AttackMethod.DISTILL_SOFT,
                AttackMethod.PARAMETER_PGD,
            }
        ),
    }
    required_modules: ClassVar[tuple[str, ...]] = ("torch", "matplotlib", "sklearn", "scipy")
    architectures: ClassVar = {"small_resnet": "threatlang.backends.watermark.models:small_resnet"}

    def accepts(self, spec: Spec) -> tuple[Unsupported, ...]:
        out = list(super().accepts(spec))
        ball = spec.threat
        if isinstance(ball, LpBall):
            if ball.target is not Target.PARAMETERS:
                out.append(
                    Unsupported(ball, "smooths over the parameters: say `around parameters`")
                )
            if ball.norm is not Norm.L2:
                out.append(Unsupported(ball, "certifies l2 balls only (Gaussian parameter noise)"))
        elif ball is None:
            out.append(Unsupported(spec, "needs an l2 ball around the parameters"))
        for kind, what in ((Train, "a `train watermark` action"), (Smooth, "a `smooth median`")):
            if not any(isinstance(a, kind) for a in spec.actions):
                out.append(Unsupported(spec, f"needs {what}"))
        return tuple(out)

    def check_options(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        for action in spec.actions:
            if isinstance(action, Train):
                cls, owner = WatermarkTrainOptions, "train watermark"
            elif isinstance(action, Smooth):
                cls, owner = WatermarkSmoothOptions, "smooth median"
            elif isinstance(action, Attack) and action.method is AttackMethod.PARAMETER_PGD:
                cls, owner = ParameterPGDOptions, "attack parameter_pgd"
            elif isinstance(action, Attack):
                cls, owner = RemovalOptions, f"attack {action.method.value}"
            else:
                continue
            out.extend(option_problems(cls, action.options, owner, action))
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec)


BACKEND = WatermarkBackend()
