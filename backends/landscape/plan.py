"""The compiled landscape spec: which optimizers, which comparison grid, which figure (no torch)."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan, bind_options
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Evaluate,
    Train,
)

from .config import (
    GreedyOptions,
    GuessCheckOptions,
    PatternSearchOptions,
    SGDOptions,
    VolumeOptions,
    WedgeOptions,
)
from threatlang.backends.choices import EvaluateKind, Strategy

#: train strategy -> (its options class, the name used in records and summary keys)
STRATEGY_OPTIONS = {
    Strategy.GUESS_AND_CHECK: (GuessCheckOptions, "guess_and_check"),
    Strategy.PATTERN_SEARCH: (PatternSearchOptions, "pattern_search"),
    Strategy.RANDOM_GREEDY: (GreedyOptions, "random_greedy"),
    Strategy.STANDARD: (SGDOptions, "sgd"),
}
if hasattr(Strategy, "SGD"):  # `train sgd`, once the language names the strategy
    STRATEGY_OPTIONS[Strategy.SGD] = (SGDOptions, "sgd")


@attrs.frozen
class OptimizerStep:
    """One `train` action: the optimizer to compare, with the language's fixed fields."""

    name: str
    train: Train
    options: GuessCheckOptions | PatternSearchOptions | GreedyOptions | SGDOptions

    def describe(self) -> str:
        o, t = self.options, self.train
        if isinstance(o, GuessCheckOptions):
            return f"Guess & Check: U[-{o.scale:g}, {o.scale:g}] guesses, {o.guess_batch} per vectorised batch, at most {o.max_guesses}"
        if isinstance(o, PatternSearchOptions):
            return f"Pattern Search: step {o.step:g}, /{o.shrink:g} after a pass without progress, at most {o.max_evaluations} evaluations"
        if isinstance(o, GreedyOptions):
            return f"Random Greedy: sigma {o.sigma:g}, /{o.shrink:g} after {o.patience} failures, at most {o.max_evaluations} evaluations"
        return f"SGD: lr {t.lr:g}, momentum {o.momentum:g}, at most {t.epochs} full-batch steps"


@attrs.frozen
class LandscapePlan(Plan):
    """Optimizers compared at matched loss levels, the poison table, and the wedge figure."""

    spec: Spec
    optimizers: tuple[OptimizerStep, ...]
    volume: VolumeOptions | None
    wedge: WedgeOptions | None

    def describe(self) -> str:
        lines = [f"landscape plan for spec {self.spec.name}"]
        lines += [f"  optimizer {s.describe()}" for s in self.optimizers]
        if self.volume is not None:
            v = self.volume
            data = self.spec.data
            classes = list(data.classes) if data is not None and data.classes else "first two"
            lines.append(
                f"  volume comparison (Table 7.2): classes {classes}, training sets of "
                f"{', '.join(map(str, v.samples))} samples x {v.trials} trials, normalised-loss "
                f"bins at {', '.join(f'{b:g}' for b in v.loss_bins)}; 100% train accuracy required"
            )
            if v.linear_baseline:
                lines.append(
                    "  linear baseline (Table 7.2): a linear model trained by SGD on the same splits"
                )
            if v.poison:
                lines.append(
                    f"  poisoned model (Table 7.1): fit each split, misclassify {v.poison_val} held-out points"
                )
        if self.wedge is not None:
            w = self.wedge
            lines.append(
                f"  wedge toy problem (Figure 7.2): {w.train_points} train / {w.test_points} test points, "
                f"widths {', '.join(map(str, w.widths))}, {w.draws} draws of poisoned / SGD / G&C"
            )
        return "\n".join(lines)

    def run(self, ctx):
        from .run import run_plan

        return run_plan(self, ctx)


def compile_plan(spec: Spec) -> LandscapePlan:
    """Bind each action's options; ``accepts`` has vetted the spec already."""
    steps, volume, wedge = [], None, None
    for action in spec.actions:
        if isinstance(action, Train):
            cls, name = STRATEGY_OPTIONS[action.strategy]
            steps.append(
                OptimizerStep(
                    name,
                    action,
                    bind_options(cls, action.options, f"train {action.strategy}"),
                )
            )
        elif isinstance(action, Evaluate) and action.kind == EvaluateKind.VOLUME:
            volume = bind_options(VolumeOptions, action.options, "evaluate volume")
        elif isinstance(action, Evaluate) and action.kind == EvaluateKind.WEDGE:
            wedge = bind_options(WedgeOptions, action.options, "evaluate wedge")
    return LandscapePlan(spec, tuple(steps), volume, wedge)
