"""The `smoothing` backend: median/percentile smoothing certificates (dissertation chapter 3).

Light on purpose: importing this package pulls in neither torch nor scipy.  It declares the
capabilities and compiles a spec to a plan; the plan imports the compute modules when it runs.
The compute modules are usable on their own: :mod:`.percentile` (order statistics, numpy/scipy
only), :mod:`.regression`, :mod:`.mean`, :mod:`.classify`, and :mod:`.detection`.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Unsupported, option_problems
from threatlang.ir import Spec
from threatlang.ir.actions import Attack, AttackMethod, Smooth, SmoothKind, Strategy, Train
from threatlang.ir.properties import IoUAtLeast
from threatlang.ir.refs import DataSource
from threatlang.ir.threats import LpBall, Norm, Target

from .config import DagOptions, DetectionSmoothOptions, DetectorTrainOptions, SceneDataOptions

__all__ = ["BACKEND", "SmoothingBackend"]


class SmoothingBackend(Backend):
    """Certified object detection by median smoothing (§3.3-3.5): every box coordinate and
    label of the smoothed detector gets a certified interval for l2 input perturbations."""

    name: ClassVar[str] = "smoothing"
    threats: ClassVar[frozenset[type]] = frozenset({LpBall})
    properties: ClassVar[frozenset[type]] = frozenset({IoUAtLeast})
    actions: ClassVar = {
        Train: frozenset({Strategy.STANDARD}),
        Smooth: frozenset({SmoothKind.MEDIAN}),
        Attack: frozenset({AttackMethod.SMOOTHING_AWARE}),
    }
    required_modules: ClassVar[tuple[str, ...]] = ("torch", "scipy", "matplotlib")
    architectures: ClassVar = {
        "scene_detector": "threatlang.backends.smoothing.detection.models:TinyDetector"
    }

    def accepts(self, spec: Spec) -> tuple[Unsupported, ...]:
        out = list(super().accepts(spec))
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
            out.append(Unsupported(spec, "needs exactly one `smooth median` action"))
        elif smooths[0].encoding is None:
            out.append(Unsupported(smooths[0], "detection smoothing needs an `encoding { ... }`"))
        model = spec.model
        if model is not None and model.architecture not in (None, *self.architectures):
            out.append(Unsupported(model, f"builtin detectors: {', '.join(self.architectures)}"))
        data = spec.data
        if data is not None and data.source is not DataSource.SCENES:
            out.append(Unsupported(data, "detection runs on `data scenes` (or data via the API)"))
        return tuple(out)

    def check_options(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        for action in spec.actions:
            if isinstance(action, Smooth):
                out += option_problems(DetectionSmoothOptions, action.options, "smooth", action)
            elif isinstance(action, Train):
                out += option_problems(DetectorTrainOptions, action.options, "train", action)
            elif isinstance(action, Attack):
                out += option_problems(DagOptions, action.options, "attack", action)
        if spec.data is not None and spec.data.source is DataSource.SCENES:
            out += option_problems(SceneDataOptions, spec.data.options, "data scenes", spec.data)
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec)


BACKEND = SmoothingBackend()
