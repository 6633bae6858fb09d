"""The compiled smoothing spec: a pure, printable description of the computation (no torch)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from threatlang.backends.base import Plan, bind_options
from threatlang.backends.choices import GeneratedData, SmoothKind
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Attack,
    Smooth,
    Train,
)
from threatlang.ir.properties import IoUAtLeast

from .config import (
    Bin,
    ClassifierTrainOptions,
    ClassifySmoothOptions,
    DagOptions,
    DetectionSmoothOptions,
    DetectorTraining,
    DetectorTrainOptions,
    NoisyTraining,
    Outputs,
    RegressionSmoothOptions,
    SceneDataOptions,
    Sort,
)

__all__ = ["ClassifyPlan", "DetectionPlan", "RegressionPlan", "compile_plan"]


@attrs.frozen
class DetectionPlan(Plan):
    """Train (or take) a detector, smooth it, certify every box, report (certified) AP."""

    spec: Spec
    eps: float
    tau: float
    smooth: Smooth
    sorts: tuple[Sort, ...]
    bins: tuple[Bin, ...]
    grid: int
    slots_per_bin: int
    denoiser: str | None
    options: DetectionSmoothOptions
    headline: tuple[Sort, Bin]  # the combination reported as the headline metrics
    training: DetectorTraining | None  # None: the model is the caller's or the spec's file
    data_options: SceneDataOptions
    test_count: int  # generated test scenes
    attack: Attack | None
    attack_options: DagOptions
    attack_step: float | None  # resolved step size of the DAG attack

    def describe(self) -> str:
        s = self.smooth
        data = self.spec.data
        lines = [
            f"smoothing plan for spec {self.spec.name}: certified detection (chapter 3)",
            f"  data: {data.source if data else 'user'}, {self.test_count} test images",
        ]
        t = self.training
        if t is not None:
            lines.append(
                f"  train detector: {t.epochs} epochs, batch {t.batch_size}, lr {t.lr:g}, "
                f"noise augmentation {t.noise_max:g}"
            )
        if self.denoiser:
            epochs = f", trained {t.denoiser_epochs} epochs" if t is not None else ""
            lines.append(f"  denoiser {self.denoiser} for sigma {s.sigma:g}{epochs}")
        lines += [
            f"  smooth: {s.samples} Gaussian samples at sigma {s.sigma:g}, median per coordinate, "
            f"confidence {s.confidence:g} per bound, radius {self.eps:g}",
            f"  encodings: sort {[x.value for x in self.sorts]} x bin {[b.value for b in self.bins]}"
            f" ({self.grid}x{self.grid} grid, {self.slots_per_bin} slots per bin)",
            f"  certified precision/recall at objectness {list(self.options.thresholds)}, "
            f"worst-case IoU >= {self.tau:g}; headline "
            f"{self.headline[0].value}/{self.headline[1].value}",
        ]
        if self.attack is not None:
            lines.append(
                f"  attack: DAG-style PGD on the smoothed detector, {self.attack.steps} steps of "
                f"{self.attack_step:g}, {self.attack_options.noise_samples} noise draws per "
                f"step, {self.attack_options.images} images"
            )
        return "\n".join(lines)

    def run(self, ctx):
        from .run import run_detection

        return run_detection(self, ctx)


@attrs.frozen
class ClassifyPlan(Plan):
    """Train (or take) a classifier under noise; certify l2 radii with CERTIFY (Cohen et al.)."""

    spec: Spec
    radii: tuple[float, ...]
    smooth: Smooth
    n0: int
    training: NoisyTraining | None  # None: the model is the caller's or the spec's file

    def describe(self) -> str:
        s = self.smooth
        lines = [f"smoothing plan for spec {self.spec.name}: smoothed classifier (Cohen et al.)"]
        if self.training is not None:
            lines.append(_describe_training("classifier", self.training))
        lines.append(
            f"  certify: {self.n0} selection + {s.samples} estimation samples at sigma "
            f"{s.sigma:g}, Clopper-Pearson at confidence {s.confidence:g}; radii "
            + ", ".join(f"{r:g}" for r in self.radii)
        )
        return "\n".join(lines)

    def run(self, ctx):
        from .classify_run import run_classify

        return run_classify(self, ctx)


@attrs.frozen
class RegressionPlan(Plan):
    """Certified bounds on every output coordinate by percentile (and/or mean) smoothing."""

    spec: Spec
    eps: float
    smooth: Smooth
    regression_options: RegressionSmoothOptions
    training: NoisyTraining | None  # None: the model is the caller's or the spec's file

    @property
    def mean_only(self) -> bool:
        return self.smooth.kind == SmoothKind.MEAN

    @property
    def use_mean(self) -> bool:
        o = self.regression_options
        return self.mean_only or (o.compare_mean and o.outputs is Outputs.SOFTMAX)

    def describe(self) -> str:
        s, o = self.smooth, self.regression_options
        lines = [f"smoothing plan for spec {self.spec.name}: certified output bounds (§3.4)"]
        if self.training is not None:
            lines.append(_describe_training("model", self.training))
        what = f"the model's {o.outputs.value}"
        if not self.mean_only:
            lines.append(
                f"  percentile smoothing (p={s.percentile:g}) of {what}: {s.samples} samples at "
                f"sigma {s.sigma:g}, bounds at confidence {s.confidence:g} each, radius {self.eps:g}"
            )
        if self.use_mean:
            lines.append(
                f"  mean smoothing (Corollary 3.0.1) of {what} in [{o.low:g}, {o.high:g}], "
                f"Hoeffding interval at confidence {s.confidence:g}"
            )
        return "\n".join(lines)

    def run(self, ctx):
        from .regression_run import run_regression

        return run_regression(self, ctx)


def _describe_training(what: str, t: NoisyTraining) -> str:
    return (
        f"  train {what}: {t.epochs} epochs, batch {t.batch_size}, lr {t.lr:g}, "
        f"Gaussian augmentation {t.noise:g}"
    )


#: binds an action's options to the class its offer declares (`Backend.options`)
Bind = Callable[[Spec, object], Any]


def _noisy_training(spec: Spec, smooth: Smooth, options: Bind) -> NoisyTraining | None:
    """The spec's `train standard`, every default resolved (noise: the smoothing sigma)."""
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    if train is None:
        return None
    opts: ClassifierTrainOptions = options(spec, train)
    noise = smooth.sigma if opts.noise is None else opts.noise
    return NoisyTraining(train.epochs, train.lr, train.batch_size, noise)


def _compile_regression(spec: Spec, smooth: Smooth, options: Bind) -> RegressionPlan:
    regression: RegressionSmoothOptions = options(spec, smooth)
    return RegressionPlan(
        spec=spec,
        eps=spec.threat.eps,
        smooth=smooth,
        regression_options=regression,
        training=_noisy_training(spec, smooth, options),
    )


def _compile_classify(spec: Spec, smooth: Smooth, options: Bind) -> ClassifyPlan:
    classify: ClassifySmoothOptions = options(spec, smooth)
    return ClassifyPlan(
        spec=spec,
        radii=tuple(spec.threat.radii),
        smooth=smooth,
        n0=classify.n0,
        training=_noisy_training(spec, smooth, options),
    )


#: test scenes generated when the spec's `data scenes` sets no `test_limit`
DEFAULT_TEST_SCENES = 100


def compile_plan(spec: Spec, options: Bind) -> DetectionPlan | ClassifyPlan | RegressionPlan:
    """Bind options (`options` is the backend's `Backend.options`) and resolve every default;
    the backend's ``accepts`` has vetted the spec."""
    smooth = next(a for a in spec.actions if isinstance(a, Smooth))
    if smooth.kind == SmoothKind.CLASSIFY:
        return _compile_classify(spec, smooth, options)
    if smooth.encoding is None:
        return _compile_regression(spec, smooth, options)
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    attack = next((a for a in spec.actions if isinstance(a, Attack)), None)
    enc = smooth.encoding
    data = spec.data
    scene_opts = (
        bind_options(SceneDataOptions, data.options, "data scenes")
        if data is not None and data.source == GeneratedData.SCENES
        else SceneDataOptions()
    )
    smoothing: DetectionSmoothOptions = options(spec, smooth)
    sorts = tuple(Sort(s.value) for s in enc.sorts)
    bins = tuple(Bin(b.value) for b in enc.bins)
    training = None
    if train is not None:
        t: DetectorTrainOptions = options(spec, train)
        training = DetectorTraining(
            train.epochs, train.batch_size, train.lr, t.noise, t.denoiser_epochs
        )
    eps = spec.threat.eps
    return DetectionPlan(
        spec=spec,
        eps=eps,
        tau=spec.require.tau if isinstance(spec.require, IoUAtLeast) else 0.5,
        smooth=smooth,
        sorts=sorts,
        bins=bins,
        grid=enc.grid[0],
        slots_per_bin=enc.max_boxes,
        denoiser=enc.denoiser,
        options=smoothing,
        headline=(smoothing.headline_sort or sorts[0], smoothing.headline_bin or bins[0]),
        training=training,
        data_options=scene_opts,
        test_count=(data.test_limit if data is not None and data.test_limit else None)
        or DEFAULT_TEST_SCENES,
        attack=attack,
        attack_options=DagOptions() if attack is None else options(spec, attack),
        attack_step=(
            None
            if attack is None
            else attack.step_size
            if attack.step_size is not None
            else 2.5 * eps / attack.steps  # DAG's usual step (§3.6)
        ),
    )
