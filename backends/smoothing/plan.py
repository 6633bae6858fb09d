"""The compiled smoothing spec: a pure, printable description of the computation (no torch)."""

from __future__ import annotations

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
    DetectorTrainOptions,
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
    train: Train | None
    train_options: DetectorTrainOptions
    data_options: SceneDataOptions
    attack: Attack | None
    attack_options: DagOptions

    @property
    def headline(self) -> tuple[Sort, Bin]:
        return (
            self.options.headline_sort or self.sorts[0],
            self.options.headline_bin or self.bins[0],
        )

    def describe(self) -> str:
        s = self.smooth
        data = self.spec.data
        lines = [
            f"smoothing plan for spec {self.spec.name}: certified detection (chapter 3)",
            f"  data: {data.source if data else 'user'}"
            + (f", {data.test_limit} test images" if data and data.test_limit else ""),
        ]
        if self.train is not None:
            lines.append(
                f"  train detector: {self.train.epochs} epochs, lr {self.train.lr:g}, "
                f"noise augmentation {self.train_options.noise:g}"
            )
        if self.denoiser:
            lines.append(f"  denoiser {self.denoiser} for sigma {s.sigma:g}")
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
                f"  attack: DAG-style PGD on the smoothed detector, {self.attack.steps} steps, "
                f"{self.attack_options.noise_samples} noise draws per step, "
                f"{self.attack_options.images} images"
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
    train: Train | None
    train_noise: float | None

    def describe(self) -> str:
        s = self.smooth
        lines = [f"smoothing plan for spec {self.spec.name}: smoothed classifier (Cohen et al.)"]
        if self.train is not None:
            noise = s.sigma if self.train_noise is None else self.train_noise
            lines.append(
                f"  train classifier: {self.train.epochs} epochs, lr {self.train.lr:g}, "
                f"Gaussian augmentation {noise:g}"
            )
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
    train: Train | None
    train_noise: float | None

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
        if self.train is not None:
            noise = s.sigma if self.train_noise is None else self.train_noise
            lines.append(
                f"  train model: {self.train.epochs} epochs, lr {self.train.lr:g}, "
                f"Gaussian augmentation {noise:g}"
            )
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


def _compile_regression(spec: Spec, smooth: Smooth) -> RegressionPlan:
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    train_opts = (
        bind_options(ClassifierTrainOptions, train.options, "train standard")
        if train is not None
        else ClassifierTrainOptions()
    )
    owner = f"smooth {smooth.kind}"
    return RegressionPlan(
        spec=spec,
        eps=spec.threat.eps,
        smooth=smooth,
        regression_options=bind_options(RegressionSmoothOptions, smooth.options, owner),
        train=train,
        train_noise=train_opts.noise,
    )


def _compile_classify(spec: Spec, smooth: Smooth) -> ClassifyPlan:
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    train_opts = (
        bind_options(ClassifierTrainOptions, train.options, "train standard")
        if train is not None
        else ClassifierTrainOptions()
    )
    return ClassifyPlan(
        spec=spec,
        radii=tuple(spec.threat.radii),
        smooth=smooth,
        n0=bind_options(ClassifySmoothOptions, smooth.options, "smooth classify").n0,
        train=train,
        train_noise=train_opts.noise,
    )


def compile_plan(spec: Spec) -> DetectionPlan | ClassifyPlan | RegressionPlan:
    """Bind options; the backend's ``accepts`` has already vetted the spec."""
    smooth = next(a for a in spec.actions if isinstance(a, Smooth))
    if smooth.kind == SmoothKind.CLASSIFY:
        return _compile_classify(spec, smooth)
    if smooth.encoding is None:
        return _compile_regression(spec, smooth)
    train = next((a for a in spec.actions if isinstance(a, Train)), None)
    attack = next((a for a in spec.actions if isinstance(a, Attack)), None)
    enc = smooth.encoding
    data = spec.data
    scene_opts = (
        bind_options(SceneDataOptions, data.options, "data scenes")
        if data is not None and data.source == GeneratedData.SCENES
        else SceneDataOptions()
    )
    return DetectionPlan(
        spec=spec,
        eps=spec.threat.eps,
        tau=spec.require.tau if isinstance(spec.require, IoUAtLeast) else 0.5,
        smooth=smooth,
        sorts=tuple(Sort(s.value) for s in enc.sorts),
        bins=tuple(Bin(b.value) for b in enc.bins),
        grid=enc.grid[0],
        slots_per_bin=enc.max_boxes,
        denoiser=enc.denoiser,
        options=bind_options(DetectionSmoothOptions, smooth.options, "smooth median"),
        train=train,
        train_options=(
            bind_options(DetectorTrainOptions, train.options, "train standard")
            if train is not None
            else DetectorTrainOptions()
        ),
        data_options=scene_opts,
        attack=attack,
        attack_options=(
            bind_options(DagOptions, attack.options, "attack smoothing_aware")
            if attack is not None
            else DagOptions()
        ),
    )
