"""The compiled landscape spec: which optimizers with which resolved settings, which
comparison grid, which figure (no torch). Every default is resolved here, so `describe()` —
`threatlang compile --emit plan` — shows exactly what `run` will compute."""

from __future__ import annotations

import attrs

from threatlang.backends.base import Plan
from threatlang.backends.choices import EvaluateKind, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import Evaluate, Train

from .config import (
    GreedyConfig,
    GreedyOptions,
    GuessCheckConfig,
    GuessCheckOptions,
    LossKind,
    OptimizerConfig,
    PatternSearchConfig,
    PatternSearchOptions,
    PoisonConfig,
    SGDConfig,
    SGDOptions,
    VolumeOptions,
    WedgeConfig,
    WedgeOptions,
)

#: strategy -> the optimizer's name in records and summary keys
OPTIMIZER_NAMES = {
    Strategy.GUESS_AND_CHECK: "guess_and_check",
    Strategy.PATTERN_SEARCH: "pattern_search",
    Strategy.RANDOM_GREEDY: "random_greedy",
    Strategy.STANDARD: "sgd",
    Strategy.SGD: "sgd",
}


@attrs.frozen
class OptimizerStep:
    """One `train` action, resolved to the config its optimizer runs with."""

    name: str
    config: OptimizerConfig

    def describe(self) -> str:
        return self.config.describe()


@attrs.frozen
class VolumeStep:
    """`evaluate volume`, resolved: the grid, its loss bins, the baselines, the widths."""

    samples: tuple[int, ...]
    trials: int
    loss_bins: tuple[float, ...]
    standardise: bool
    linear: SGDConfig | None  # Table 7.2's linear model, trained by SGD
    poison: PoisonConfig | None  # Table 7.1's poisoned model
    poison_val: int
    widths: tuple[float | None, ...]  # (None,): the spec's model as written

    def describe(self, spec: Spec) -> list[str]:
        data = spec.data
        classes = (
            f"classes {list(data.classes)}"
            if data is not None and data.classes
            else "every class of the data"
        )
        bins = ", ".join(f"{b:g}" for b in self.loss_bins)
        lines = [
            f"  volume comparison (Tables 7.2-7.4): {classes}, class-balanced training sets of "
            f"{', '.join(map(str, self.samples))} samples x {self.trials} trials, inputs "
            f"{'standardised by the training pool' if self.standardise else 'as loaded'}; "
            f"normalised-loss bins at {bins}; 100% train accuracy required; every optimizer "
            "compared with SGD over the bins both filled, with per-bin paired gaps"
        ]
        if self.widths != (None,):
            lines.append(
                "  width scaling (Table 7.6): the model's `width` option at "
                + ", ".join(f"{w:g}" for w in self.widths if w is not None)
            )
        if self.linear is not None:
            lines.append(
                "  linear baseline (Table 7.2): a linear model on the same splits, "
                + self.linear.describe()
            )
        if self.poison is not None:
            p = self.poison
            lines.append(
                f"  poisoned model (Table 7.1): fit each split, misclassify {self.poison_val} "
                f"held-out points (Adam lr {p.lr:g}, at most {p.steps} steps, validation weight "
                f"{p.val_weight:g})"
            )
        return lines


@attrs.frozen
class LandscapePlan(Plan):
    """Optimizers compared at matched loss levels, the poison table, and the wedge figure."""

    spec: Spec
    optimizers: tuple[OptimizerStep, ...]
    volume: VolumeStep | None
    wedge: WedgeConfig | None

    def describe(self) -> str:
        lines = [f"landscape plan for spec {self.spec.name}"]
        lines += [f"  optimizer {s.describe()}" for s in self.optimizers]
        if self.volume is not None:
            lines += self.volume.describe(self.spec)
        if self.wedge is not None:
            w = self.wedge
            lines.append(
                f"  wedge toy problem (Figure 7.2): {w.train} train / {w.test} test points "
                f"(margin {w.margin:g}), widths {', '.join(map(str, w.widths))}, {w.draws} draws "
                f"of poisoned (Adam lr {w.poison_lr:g}, {w.poison_steps} steps, test-point weight "
                f"{w.poison_weight:g}) / SGD (lr {w.sgd_lr:g}, "
                f"{w.sgd_steps} steps) / G&C ({w.max_guesses} guesses) below loss "
                f"{w.loss_below:g}; accuracy on {w.population} fresh points"
            )
        return "\n".join(lines)

    def run(self, ctx):
        from .run import run_plan

        return run_plan(self, ctx)


def optimizer_config(train: Train, options) -> OptimizerConfig:
    """The optimizer's config from a `train` action's fixed fields and bound options."""
    o = options
    if isinstance(o, GuessCheckOptions):
        return GuessCheckConfig(
            bound=o.scale, batch=o.guess_batch, max_guesses=o.max_guesses,
            loss_kind=LossKind.NORMALISED,
        )  # fmt: skip
    if isinstance(o, PatternSearchOptions):
        return PatternSearchConfig(
            step=o.step, shrink=o.shrink, max_evaluations=o.max_evaluations, objective=o.objective
        )
    if isinstance(o, GreedyOptions):
        return GreedyConfig(
            sigma=o.sigma, shrink=o.shrink, patience=o.patience,
            max_evaluations=o.max_evaluations, objective=o.objective,
        )  # fmt: skip
    assert isinstance(o, SGDOptions)
    return SGDConfig(
        lr=train.lr,
        momentum=o.momentum,
        batch_size=train.batch_size,
        max_steps=train.epochs,
        patience=o.patience,
        weight_decay=o.weight_decay,
    )


def _volume(v: VolumeOptions, sgd: SGDConfig | None) -> VolumeStep:
    return VolumeStep(
        samples=v.samples,
        trials=v.trials,
        loss_bins=v.loss_bins,
        standardise=v.standardise,
        linear=(sgd or SGDConfig()) if v.linear_baseline else None,
        poison=PoisonConfig(steps=v.poison_steps) if v.poison else None,
        poison_val=v.poison_val,
        widths=tuple(v.widths) or (None,),
    )


def _wedge(w: WedgeOptions) -> WedgeConfig:
    return WedgeConfig(
        train=w.train_points,
        test=w.test_points,
        margin=w.margin,
        widths=w.widths,
        draws=w.draws,
        loss_below=w.loss_below,
        max_guesses=w.max_guesses,
        poison_steps=w.poison_steps,
        poison_weight=w.poison_weight,
    )


def compile_plan(spec: Spec, backend) -> LandscapePlan:
    """Bind each action's options through the backend's declarations; resolve every default."""
    steps, volume, wedge = [], None, None
    for action in spec.actions:
        if isinstance(action, Train):
            config = optimizer_config(action, backend.options(spec, action))
            steps.append(OptimizerStep(OPTIMIZER_NAMES[action.strategy], config))
    sgd = next((s.config for s in steps if isinstance(s.config, SGDConfig)), None)
    for action in spec.actions:
        if isinstance(action, Evaluate) and action.kind == EvaluateKind.VOLUME:
            volume = _volume(backend.options(spec, action), sgd)
        elif isinstance(action, Evaluate) and action.kind == EvaluateKind.WEDGE:
            wedge = _wedge(backend.options(spec, action))
    return LandscapePlan(spec, tuple(steps), volume, wedge)
