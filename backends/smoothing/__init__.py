"""The `smoothing` backend: median/percentile smoothing certificates (dissertation chapter 3).

Light on purpose: importing this package pulls in neither torch nor scipy.  It declares the
capabilities and compiles a spec to a plan; the plan imports the compute modules when it runs.
The compute modules are usable on their own: :mod:`.regression`, :mod:`.mean`, :mod:`.classify`
and :mod:`.detection`; the order statistics live in the core (:mod:`threatlang.stats`).
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Capabilities, DataOffer, Offer, Unsupported
from threatlang.backends.choices import AttackMethod, GeneratedData, SmoothKind, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Smooth,
    Train,
)
from threatlang.ir.properties import IoUAtLeast, LabelUnchanged, OutputBounds
from threatlang.ir.threats import LpBall, Norm, Target

from .config import (
    ClassifierTrainOptions,
    ClassifySmoothOptions,
    DagOptions,
    DetectionSmoothOptions,
    DetectorTrainOptions,
    RegressionSmoothOptions,
    SceneDataOptions,
)
from .summary import SmoothingSummary

__all__ = ["BACKEND", "SmoothingBackend"]


def _detection(spec: Spec) -> bool:
    """Detection smoothing is the spec whose `smooth` carries an `encoding`."""
    return any(isinstance(a, Smooth) and a.encoding is not None for a in spec.actions)


class SmoothingBackend(Backend):
    """Certified object detection by median smoothing (§3.3-3.5): every box coordinate and
    label of the smoothed detector gets a certified interval for l2 input perturbations;
    certified bounds on any model's outputs (percentile or mean smoothing, ``require
    output_bounds``); and the classic smoothed classifier (``smooth classify``)."""

    name: ClassVar[str] = "smoothing"
    capabilities: ClassVar = Capabilities(
        families={"input ball"},
        properties={IoUAtLeast, LabelUnchanged, OutputBounds},
        offers=[
            Offer(Train, Strategy.STANDARD, DetectorTrainOptions, when=_detection),
            Offer(Train, Strategy.STANDARD, ClassifierTrainOptions),
            Offer(Smooth, SmoothKind.CLASSIFY, ClassifySmoothOptions),
            *(
                Offer(Smooth, kind, DetectionSmoothOptions, when=_detection)
                for kind in (SmoothKind.MEDIAN, SmoothKind.PERCENTILE, SmoothKind.MEAN)
            ),
            *(
                Offer(Smooth, kind, RegressionSmoothOptions)
                for kind in (SmoothKind.MEDIAN, SmoothKind.PERCENTILE, SmoothKind.MEAN)
            ),
            Offer(Attack, AttackMethod.SMOOTHING_AWARE, DagOptions),
        ],
        data=[DataOffer(GeneratedData.SCENES, SceneDataOptions)],
        architectures={
            "scene_detector": "threatlang.backends.smoothing.detection.models:scene_detector",
            "smoothed_cnn": "threatlang.backends.smoothing.classifier_model:smoothed_cnn",
        },
        required_modules=("torch", "scipy", "matplotlib"),
        priority=20,
        summary=SmoothingSummary,
        certifies=True,
    )

    def refine(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        ball = spec.threat
        if isinstance(ball, LpBall):
            if ball.target is not Target.INPUT:
                out.append(Unsupported(ball, "smooths over the input: say `around input`"))
            if ball.norm is not Norm.L2:
                out.append(Unsupported(ball, "certifies l2 balls only (Gaussian noise)"))
        elif ball is None:
            out.append(Unsupported(spec, "needs an l2 ball around the input"))
        smooths = [a for a in spec.actions if isinstance(a, Smooth)]
        if len(smooths) != 1:
            out.append(Unsupported(spec, "needs exactly one `smooth` action"))
            return out
        if smooths[0].kind == SmoothKind.MEDIAN and smooths[0].percentile != 0.5:
            out.append(
                Unsupported(
                    smooths[0], "median smoothing uses percentile 0.5: say `smooth percentile`"
                )
            )
        if smooths[0].kind == SmoothKind.CLASSIFY:
            out += self._accepts_classify(spec, LabelUnchanged, "label_unchanged")
        elif smooths[0].encoding is None:
            out += self._accepts_classify(spec, OutputBounds, "output_bounds")
        else:
            out += self._accepts_detection(spec, smooths[0])
        return out

    def _accepts_detection(self, spec: Spec, smooth: Smooth) -> list[Unsupported]:
        out = []
        if smooth.kind != SmoothKind.MEDIAN:
            out.append(Unsupported(smooth, "detection smoothing is `smooth median`"))
        if spec.require is not None and not isinstance(spec.require, IoUAtLeast):
            out.append(Unsupported(spec.require, "detection certifies `iou_at_least(tau)`"))
        model = spec.model
        if model is not None and model.architecture not in (None, "scene_detector"):
            out.append(Unsupported(model, "the builtin detector is `scene_detector`"))
        data = spec.data
        if data is not None and data.source != GeneratedData.SCENES:
            out.append(Unsupported(data, "detection runs on `data scenes` (or data via the API)"))
        return out

    def _accepts_classify(self, spec: Spec, prop: type, name: str) -> list[Unsupported]:
        """Classification (``smooth classify``) and regression (``smooth median|percentile|mean``
        without an encoding) share their model and data rules."""
        out = []
        if not isinstance(spec.require, prop):
            what = "smooth classify" if prop is LabelUnchanged else "regression smoothing"
            out.append(Unsupported(spec.require or spec, f"{what} certifies {name}"))
        model = spec.model
        if model is not None and model.architecture not in (None, "smoothed_cnn"):
            out.append(Unsupported(model, "the builtin smoothed classifier is `smoothed_cnn`"))
        if spec.data is not None and spec.data.source == GeneratedData.SCENES:
            out.append(Unsupported(spec.data, "classification needs an image dataset"))
        if any(isinstance(a, Attack) for a in spec.actions):
            out.append(Unsupported(spec, "attacks are for detection smoothing only"))
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec, self.options)


BACKEND = SmoothingBackend()
