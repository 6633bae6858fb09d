"""The `ibp` backend: certified patch defences by interval bound propagation (chapter 2).

Light on purpose: importing this package pulls in no torch. It declares what it supports and
compiles a spec to a :class:`~.plan.IbpPlan`; the plan imports the compute modules when it runs.
Those are usable on their own: :mod:`.bounds` (per-layer IBP/CROWN rules), :mod:`.engine`
(margin bounds with elision), :mod:`.local` (receptive-field patch IBP), :mod:`.margins`,
:mod:`.certify`, :mod:`.train`, :mod:`.attack`, :mod:`.models`.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Unsupported, option_problems
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    AttackMethod,
    Certify,
    CertifyMethod,
    Evaluate,
    EvaluateKind,
    Strategy,
    Train,
)
from threatlang.ir.properties import LabelUnchanged
from threatlang.ir.refs import DataSource, PreprocessKind
from threatlang.ir.threats import LpBall, PatchSet, Target

from .config import AttackOptions, CertifyOptions, ModelOptions, TrainOptions
from .defense_options import DWConfig, LGSConfig

__all__ = ["BACKEND", "IbpBackend"]

_ARCH = "threatlang.backends.ibp.models"


class IbpBackend(Backend):
    """Certificate training and all-patch certification with IBP/CROWN margin bounds (§2.4),
    patch attacks with location search (§2.3), and l-inf / l2 input-ball certificates."""

    name: ClassVar[str] = "ibp"
    threats: ClassVar[frozenset[type]] = frozenset({PatchSet, LpBall})
    properties: ClassVar[frozenset[type]] = frozenset({LabelUnchanged})
    actions: ClassVar = {
        Train: frozenset(
            {
                Strategy.STANDARD,
                Strategy.ALL_PATCH,
                Strategy.RANDOM_PATCH,
                Strategy.GUIDED_PATCH,
                Strategy.POOLED_PATCH,
            }
        ),
        Certify: frozenset({CertifyMethod.IBP, CertifyMethod.CROWN}),
        Attack: frozenset({AttackMethod.IFGSM, AttackMethod.PGD, AttackMethod.BPDA}),
        Evaluate: frozenset({EvaluateKind.SHAPE_TRANSFER}),
    }
    required_modules: ClassVar[tuple[str, ...]] = ("torch", "matplotlib")
    architectures: ClassVar = {
        name: f"{_ARCH}:{name}" for name in ("mlp255", "small_cnn", "large_cnn", "five_layer_wide")
    }

    def accepts(self, spec: Spec) -> tuple[Unsupported, ...]:
        out = list(super().accepts(spec))
        threat = spec.threat
        if threat is None:
            out.append(
                Unsupported(spec, "needs a patch threat or an l-inf/l2 ball around the input")
            )
        if isinstance(threat, LpBall):
            if threat.target is not Target.INPUT:
                out.append(Unsupported(threat, "bounds input balls only: say `around input`"))
            for action in spec.actions:
                if isinstance(action, Attack) or (
                    isinstance(action, Train) and action.strategy is not Strategy.STANDARD
                ):
                    out.append(Unsupported(action, "patch actions need a patch threat"))
        model = spec.model
        if model is not None and model.architecture not in (None, *self.architectures):
            out.append(Unsupported(model, f"builtin models: {', '.join(self.architectures)}"))
        if spec.data is not None and spec.data.source in (
            DataSource.SCENES,
            DataSource.VALUATIONS,
            DataSource.WEDGE,
        ):
            out.append(
                Unsupported(spec.data, "classifies images: digits, mnist, mnist5k, cifar10, npz")
            )
        out += _chapter2_checks(spec)
        return tuple(out)

    def check_options(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        for action in spec.actions:
            if isinstance(action, Train):
                out += option_problems(TrainOptions, action.options, "train", action)
            elif isinstance(action, Certify):
                out += option_problems(CertifyOptions, action.options, "certify", action)
            elif isinstance(action, Attack):
                out += option_problems(AttackOptions, action.options, "attack", action)
        if spec.model is not None:
            out += option_problems(ModelOptions, spec.model.options, "model", spec.model)
        for p in spec.preprocess:
            cfg = LGSConfig if p.kind is PreprocessKind.LGS else DWConfig
            out += option_problems(cfg, p.options, f"preprocess {p.kind.value}", p)
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec)


def _chapter2_checks(spec: Spec) -> list[Unsupported]:
    """Preprocessing defences cannot be bounded (sound or silent); bpda needs one; guided
    training and shape transfer need a patch threat (guided: one shape or `patch n`)."""
    out: list[Unsupported] = []
    for a in spec.actions:
        if spec.preprocess and isinstance(a, Certify | Evaluate):
            out.append(Unsupported(a, "cannot bound LGS/DW preprocessing; certify without it"))
        if isinstance(a, Attack) and a.method is AttackMethod.BPDA and not spec.preprocess:
            out.append(Unsupported(a, "`attack bpda` attacks through a `preprocess` defence"))
        patch = isinstance(spec.threat, PatchSet)
        if isinstance(a, Evaluate) and not patch:
            out.append(Unsupported(a, "shape transfer needs a patch threat"))
        if isinstance(a, Train) and a.strategy is Strategy.GUIDED_PATCH and patch:
            named = any(o.name == "patch" for o in a.options)
            if len(spec.threat.shapes) > 1 and not named:
                out.append(Unsupported(a, "guided training takes one shape: add `patch n`"))
    return out


BACKEND = IbpBackend()
