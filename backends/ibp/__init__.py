"""The `ibp` backend: certified patch defences by interval bound propagation (chapter 2).

Light on purpose: importing this package pulls in no torch. It declares what it supports and
compiles a spec to a :class:`~.plan.IbpPlan`; the plan imports the compute modules when it runs.
Those are usable on their own: :mod:`.bounds` (per-layer IBP/CROWN rules), :mod:`.engine`
(margin bounds with elision), :mod:`.local` (receptive-field patch IBP), :mod:`.margins`,
:mod:`.certify`, :mod:`.train`, :mod:`.attack`, :mod:`.models`.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Capabilities, Offer, Unsupported, option_problems
from threatlang.backends.choices import (
    AttackMethod,
    CertifyMethod,
    EvaluateKind,
    Strategy,
)
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Certify,
    Evaluate,
    Train,
)
from threatlang.ir.properties import LabelUnchanged
from threatlang.ir.refs import (
    PreprocessKind,
)
from threatlang.ir.threats import LpBall, PatchSet, Target

from .config import AttackOptions, CertifyOptions, ModelOptions, TrainOptions
from .defense_options import DWConfig, LGSConfig
from .metrics import IbpSummary

__all__ = ["BACKEND", "IbpBackend"]

_ARCH = "threatlang.backends.ibp.models"


_PATCH_ONLY = ("patch",)
_PATCH_AND_BALL = ("patch", "input ball")


class IbpBackend(Backend):
    """Certificate training and all-patch certification with IBP/CROWN margin bounds (§2.4),
    patch attacks with location search (§2.3), and l-inf / l2 input-ball certificates."""

    name: ClassVar[str] = "ibp"
    capabilities: ClassVar = Capabilities(
        families={"patch", "input ball"},
        properties={LabelUnchanged},
        offers=[
            Offer(Train, Strategy.STANDARD, TrainOptions),
            Offer(Train, Strategy.ALL_PATCH, TrainOptions, families=_PATCH_ONLY),
            Offer(Train, Strategy.RANDOM_PATCH, TrainOptions, families=_PATCH_ONLY, takes_k=True),
            Offer(Train, Strategy.GUIDED_PATCH, TrainOptions, families=_PATCH_ONLY, takes_k=True),
            Offer(Train, Strategy.POOLED_PATCH, TrainOptions, families=_PATCH_ONLY),
            Offer(Certify, CertifyMethod.IBP, CertifyOptions),
            Offer(Certify, CertifyMethod.CROWN, CertifyOptions),
            Offer(Certify, CertifyMethod.ALPHA_CROWN, CertifyOptions),
            Offer(Attack, AttackMethod.IFGSM, AttackOptions, families=_PATCH_AND_BALL),
            Offer(Attack, AttackMethod.PGD, AttackOptions, families=_PATCH_AND_BALL),
            Offer(Attack, AttackMethod.BPDA, AttackOptions, families=_PATCH_ONLY),
            Offer(Evaluate, EvaluateKind.SHAPE_TRANSFER, families=_PATCH_ONLY),
        ],
        model_options=ModelOptions,
        architectures={
            name: f"{_ARCH}:{name}"
            for name in (
                "mlp255",
                "small_cnn",
                "large_cnn",
                "chapter_small_cnn",
                "chapter_large_cnn",
                "five_layer_wide",
            )
        },
        required_modules=("torch", "matplotlib"),
        priority=10,
        summary=IbpSummary,
        certifies=True,
    )

    def refine(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        threat = spec.threat
        if isinstance(threat, LpBall) and threat.target is not Target.INPUT:
            out.append(Unsupported(threat, "bounds input balls only: say `around input`"))
        for p in spec.preprocess:
            cfg = LGSConfig if p.kind is PreprocessKind.LGS else DWConfig
            out += option_problems(cfg, p.options, f"preprocess {p.kind.value}", p)
        return out + _chapter2_checks(spec) + _one_of_each(spec) + _ball_checks(spec)

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec, self.options)


def _chapter2_checks(spec: Spec) -> list[Unsupported]:
    """Preprocessing defences cannot be bounded (sound or silent); bpda needs one; guided
    training and shape transfer need a patch threat (guided: one shape or `patch n`)."""
    out: list[Unsupported] = []
    for a in spec.actions:
        if spec.preprocess and isinstance(a, Certify | Evaluate):
            out.append(Unsupported(a, "cannot bound LGS/DW preprocessing; certify without it"))
        if isinstance(a, Attack) and a.method == AttackMethod.BPDA and not spec.preprocess:
            out.append(Unsupported(a, "`attack bpda` attacks through a `preprocess` defence"))
        patch = isinstance(spec.threat, PatchSet)
        if isinstance(a, Evaluate) and not patch:
            out.append(Unsupported(a, "shape transfer needs a patch threat"))
        if isinstance(a, Train) and a.strategy == Strategy.GUIDED_PATCH and patch:
            named = any(o.name == "patch" for o in a.options)
            if len(spec.threat.shapes) > 1 and not named:
                out.append(Unsupported(a, "guided training takes one shape: add `patch n`"))
    return out


def _one_of_each(spec: Spec) -> list[Unsupported]:
    """Records hold one attack's and one certificate's result per image."""
    out: list[Unsupported] = []
    for kind, verb in ((Attack, "attack"), (Certify, "certify")):
        extra = [a for a in spec.actions if isinstance(a, kind)][1:]
        out += [Unsupported(a, f"one `{verb}` action per spec (records hold one)") for a in extra]
    return out


def _ball_checks(spec: Spec) -> list[Unsupported]:
    """Input balls have no placements to search, and LGS/DW are patch defences (§2.3)."""
    if not isinstance(spec.threat, LpBall):
        return []
    out = [
        Unsupported(p, "LGS/DW preprocessing defends against patches, not input balls")
        for p in spec.preprocess
    ]
    for a in spec.actions:
        if isinstance(a, Attack) and a.locations is not None:
            out.append(Unsupported(a, "`locations` searches patch placements; a ball has none"))
        if isinstance(a, Attack) and any(o.name == "max_locations" for o in a.options):
            out.append(Unsupported(a, "`max_locations` samples patch placements; a ball has none"))
    return out


BACKEND = IbpBackend()
