"""The `advtrain` backend: pyramid and universal pyramid adversarial training (chapter 6).

Light on purpose: declares capabilities and compiles a spec to a plan without importing torch;
the plan imports the compute modules (pyramid, pat, upat, vit, corruptions, attacks) when it runs.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Capabilities, Offer, Unsupported
from threatlang.backends.choices import AttackMethod, EvaluateKind, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Evaluate,
    Train,
)
from threatlang.ir.properties import LabelUnchanged
from threatlang.ir.threats import LpBall, Norm, Pyramid, Target

from .config import AdvTrainOptions, AttackOptions, CorruptionOptions
from .summary import AdvTrainSummary

__all__ = ["BACKEND", "AdvTrainBackend"]


class AdvTrainBackend(Backend):
    """Trains classifiers (a small ViT by default) with standard, sample-wise pyramid (PAT-k)
    and universal pyramid (UPAT) adversarial training side by side, optionally over a radius
    sweep; reports clean accuracy, the 15 ImageNet-C corruptions' accuracy and mCE (against a
    fixed reference CNN), time per epoch and passes per step; attacks with IFGSM/PGD."""

    name: ClassVar[str] = "advtrain"
    capabilities: ClassVar = Capabilities(
        families={"pyramid", "input ball", None},
        properties={LabelUnchanged},
        offers=[
            *(
                Offer(Train, s, AdvTrainOptions)
                for s in (Strategy.STANDARD, Strategy.PYRAMID, Strategy.UNIVERSAL_PYRAMID)
            ),
            Offer(Attack, AttackMethod.IFGSM, AttackOptions),
            Offer(Attack, AttackMethod.PGD, AttackOptions),
            Offer(Evaluate, EvaluateKind.CORRUPTIONS, CorruptionOptions),
            Offer(Evaluate, EvaluateKind.ACCURACY),
        ],
        architectures={
            "vit_tiny": "threatlang.backends.advtrain.vit:vit_tiny",
            "timm": "threatlang.backends.advtrain.vit:timm_model",  # only when timm is installed
        },
        required_modules=("torch", "sklearn", "scipy"),
        priority=50,
        summary=AdvTrainSummary,
    )

    def refine(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        threat = spec.threat
        if isinstance(threat, Pyramid) and threat.norm is not Norm.LINF:
            out.append(
                Unsupported(threat, "pyramid perturbations are l-inf (C_B clips each level)")
            )
        if isinstance(threat, LpBall) and threat.target is not Target.INPUT:
            out.append(Unsupported(threat, "attacks and trains around the input only"))
        if not spec.actions:
            out.append(Unsupported(spec, "needs an action: train, evaluate or attack"))
        for action in spec.actions:
            if not isinstance(action, Train) or action.strategy == Strategy.STANDARD:
                continue
            if not isinstance(threat, Pyramid):
                out.append(Unsupported(action, f"`train {action.strategy}` needs a pyramid threat"))
                continue
            universal = action.strategy == Strategy.UNIVERSAL_PYRAMID
            if threat.universal != universal:
                want = "universal_pyramid" if threat.universal else "pyramid"
                out.append(
                    Unsupported(
                        action,
                        f"the threat says universal {str(threat.universal).lower()}: train {want}",
                    )
                )
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec, self)


BACKEND = AdvTrainBackend()
