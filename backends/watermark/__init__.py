"""The `watermark` backend: certified watermarks by smoothing over the parameters (chapter 5).

Light on purpose: declares capabilities and compiles a spec to a plan without importing torch;
the plan imports the compute modules when it runs.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Capabilities, Offer, Unsupported
from threatlang.backends.choices import AttackMethod, SmoothKind, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Smooth,
    Train,
)
from threatlang.ir.properties import AccuracyAtLeast
from threatlang.ir.threats import LpBall, Norm, Target

from .config import (
    ParameterPGDOptions,
    RemovalOptions,
    WatermarkSmoothOptions,
    WatermarkTrainOptions,
)
from .summary import WatermarkSummary

__all__ = ["BACKEND", "WatermarkBackend"]


class WatermarkBackend(Backend):
    """Embeds a trigger-set watermark with parameter noise (Algorithm 2) and certifies its median
    smoothed trigger accuracy over an l2 ball around the parameters (Corollary 5.0.1)."""

    name: ClassVar[str] = "watermark"
    capabilities: ClassVar = Capabilities(
        families={"parameter ball"},
        properties={AccuracyAtLeast},
        offers=[
            Offer(Train, Strategy.WATERMARK, WatermarkTrainOptions),
            Offer(Smooth, SmoothKind.MEDIAN, WatermarkSmoothOptions),
            Offer(Attack, AttackMethod.PARAMETER_PGD, ParameterPGDOptions),
            *(
                Offer(Attack, m, RemovalOptions)
                for m in (
                    AttackMethod.FINETUNE,
                    AttackMethod.DISTILL_HARD,
                    AttackMethod.DISTILL_SOFT,
                )
            ),
        ],
        architectures={"small_resnet": "threatlang.backends.watermark.models:small_resnet"},
        required_modules=("torch", "matplotlib", "sklearn", "scipy"),
        priority=30,
        summary=WatermarkSummary,
        certifies=True,
    )

    def refine(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
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
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec, self)


BACKEND = WatermarkBackend()
