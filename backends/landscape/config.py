"""Options of the landscape backend's actions and the resolved configs its optimizers run.

Two layers, both torch-free (the light ``__init__`` binds the first to check a spec, and the
plan holds the second): ``*Options`` are what a spec may write (their defaults are the option
defaults the capabilities declare); ``*Config`` are what the compute modules take, every value
resolved by ``compile`` so that ``compile --emit plan`` shows exactly what will run.
"""

from __future__ import annotations

import enum

import attrs

_pos = attrs.validators.gt(0)
_nonneg = attrs.validators.ge(0)
_above_one = attrs.validators.gt(1)
_momentum = attrs.validators.and_(attrs.validators.ge(0), attrs.validators.lt(1))


class LossKind(enum.Enum):
    """Which training loss a threshold or an objective refers to.

    ``training`` is the plain cross-entropy the chapter's optimizers minimise (§7.4.1);
    ``normalised`` divides the logits by their RMS margin first (the comparison measure of the
    loss bins, invariant to the logits' scale)."""

    TRAINING = "training"
    NORMALISED = "normalised"


# ------------------------------------------------------------------------- spec options
@attrs.frozen
class GuessCheckOptions:
    """``train guess_and_check { scale 1.0  max_guesses 1000000  guess_batch 4096 }``."""

    scale: float = attrs.field(default=1.0, validator=_pos)
    max_guesses: int = attrs.field(default=1_000_000, validator=_pos)
    guess_batch: int = attrs.field(default=4096, validator=_pos)


@attrs.frozen
class PatternSearchOptions:
    """``train pattern_search { step 1.0  shrink 2.0  max_evaluations 20000
    objective training }`` (the chapter: accept a step when the training loss falls)."""

    step: float = attrs.field(default=1.0, validator=_pos)
    shrink: float = attrs.field(default=2.0, validator=_above_one)
    max_evaluations: int = attrs.field(default=20_000, validator=_pos)
    objective: LossKind = LossKind.TRAINING


@attrs.frozen
class GreedyOptions:
    """``train random_greedy { sigma 1.0  shrink 2.0  patience 30000  max_evaluations 20000
    objective training }`` (the chapter waits 30,000 failures before halving sigma)."""

    sigma: float = attrs.field(default=1.0, validator=_pos)
    shrink: float = attrs.field(default=2.0, validator=_above_one)
    patience: int = attrs.field(default=30_000, validator=_pos)
    max_evaluations: int = attrs.field(default=20_000, validator=_pos)
    objective: LossKind = LossKind.TRAINING


@attrs.frozen
class SGDOptions:
    """``train standard { epochs 500  lr 0.01  momentum 0.9 }``: epochs are optimizer steps
    (full-batch when the training set is no larger than ``batch``)."""

    momentum: float = attrs.field(default=0.9, validator=_momentum)
    weight_decay: float = attrs.field(default=0.0, validator=_nonneg)
    patience: int = attrs.field(default=200, validator=_pos)


@attrs.frozen
class VolumeOptions:
    """``evaluate volume``: the few-shot comparison grid (Tables 7.2-7.4), the poison table
    (7.1) and, with ``widths``, the width scaling of Table 7.6 (the model's ``width`` option
    set to each value in turn)."""

    samples: tuple[int, ...] = attrs.field(default=(2, 4, 8, 16, 32))
    trials: int = attrs.field(default=4, validator=_pos)
    loss_bins: tuple[float, ...] = attrs.field(default=(0.32, 0.34, 0.36, 0.38, 0.4, 0.45, 0.5))
    standardise: bool = True
    linear_baseline: bool = True
    poison: bool = True
    poison_val: int = attrs.field(default=64, validator=_pos)
    poison_steps: int = attrs.field(default=1500, validator=_pos)
    widths: tuple[float, ...] = attrs.field(default=())

    @samples.validator
    def _samples(self, _a: attrs.Attribute, value: tuple[int, ...]) -> None:
        if not value or any(v < 2 for v in value):
            raise ValueError(f"samples must be training-set sizes of at least 2, got {value}")

    @loss_bins.validator
    def _bins(self, _a: attrs.Attribute, value: tuple[float, ...]) -> None:
        if (
            len(value) < 2
            or any(a >= b for a, b in zip(value, value[1:], strict=False))
            or value[0] < 0
        ):
            raise ValueError(f"loss_bins must be at least two ascending edges >= 0, got {value}")

    @widths.validator
    def _widths(self, _a: attrs.Attribute, value: tuple[float, ...]) -> None:
        if any(w <= 0 for w in value) or len(set(value)) != len(value):
            raise ValueError(f"widths must be distinct positive width multipliers, got {value}")


@attrs.frozen
class WedgeOptions:
    """``evaluate wedge``: the toy problem of §7.3 and its decision-boundary figure."""

    widths: tuple[int, ...] = attrs.field(default=(2, 4, 10, 15, 20))
    draws: int = attrs.field(default=3, validator=_pos)
    train_points: int = attrs.field(default=11, validator=attrs.validators.ge(2))
    test_points: int = attrs.field(default=5, validator=_pos)
    margin: float = attrs.field(default=0.15, validator=_nonneg)
    loss_below: float = attrs.field(default=0.4, validator=_pos)
    max_guesses: int = attrs.field(default=400_000, validator=_pos)
    poison_steps: int = attrs.field(default=2000, validator=_pos)
    poison_weight: float = attrs.field(default=0.3, validator=_pos)

    @widths.validator
    def _widths(self, _a: attrs.Attribute, value: tuple[int, ...]) -> None:
        if not value or any(w < 1 for w in value):
            raise ValueError(f"widths must be positive hidden-layer sizes, got {value}")


# ------------------------------------------------------------------- resolved configs
@attrs.frozen
class GuessCheckConfig:
    """``bound`` is ``a`` in ``U[-a, a]`` (the chapter uses 1); ``max_guesses`` caps the
    search; guesses are scored ``batch`` at a time in one vectorised call."""

    bound: float = attrs.field(default=1.0, validator=_pos)
    batch: int = attrs.field(default=4096, validator=_pos)
    max_guesses: int = attrs.field(default=1_000_000, validator=_pos)
    loss_kind: LossKind = LossKind.NORMALISED

    def describe(self) -> str:
        return (
            f"Guess & Check: U[-{self.bound:g}, {self.bound:g}] guesses, {self.batch} per "
            f"vectorised batch, at most {self.max_guesses}; accepted on the "
            f"{self.loss_kind.value} loss"
        )


@attrs.frozen
class PatternSearchConfig:
    """Chapter defaults: step 1, halved after a pass over all parameters without progress;
    a step is kept when the ``objective`` (the training loss) falls."""

    step: float = attrs.field(default=1.0, validator=_pos)
    shrink: float = attrs.field(default=2.0, validator=_above_one)
    min_step: float = 1e-4
    max_evaluations: int = 200_000
    objective: LossKind = LossKind.TRAINING

    def describe(self) -> str:
        return (
            f"Pattern Search: step {self.step:g}, /{self.shrink:g} after a pass without "
            f"progress (down to {self.min_step:g}), at most {self.max_evaluations} evaluations; "
            f"a step is kept when the {self.objective.value} loss falls"
        )


@attrs.frozen
class GreedyConfig:
    """Chapter defaults for ``sigma`` and ``shrink``; ``patience`` is 30,000 in the chapter."""

    sigma: float = attrs.field(default=1.0, validator=_pos)
    shrink: float = attrs.field(default=2.0, validator=_above_one)
    patience: int = attrs.field(default=30_000, validator=_pos)
    min_sigma: float = 1e-4
    max_evaluations: int = 200_000
    objective: LossKind = LossKind.TRAINING

    def describe(self) -> str:
        return (
            f"Random Greedy: sigma {self.sigma:g}, /{self.shrink:g} after {self.patience} "
            f"failures (down to {self.min_sigma:g}), at most {self.max_evaluations} "
            f"evaluations; a step is kept when the {self.objective.value} loss falls"
        )


@attrs.frozen
class SGDConfig:
    """SGD with momentum on the training cross-entropy (``torch.optim.SGD``); full-batch when
    ``batch_size`` is 0 or at least the training-set size.

    Training stops when every window has a model, after ``max_steps``, after ``patience``
    steps without a new lowest normalised loss, or once the model fits the data below every
    open window (SGD's normalised loss rarely climbs back)."""

    lr: float = attrs.field(default=0.01, validator=_pos)
    momentum: float = attrs.field(default=0.9, validator=_momentum)
    batch_size: int = attrs.field(default=0, validator=_nonneg)
    max_steps: int = attrs.field(default=2000, validator=_pos)
    patience: int = attrs.field(default=200, validator=_pos)
    weight_decay: float = attrs.field(default=0.0, validator=_nonneg)

    def describe(self) -> str:
        batch = "full batch" if self.batch_size == 0 else f"batches of {self.batch_size}"
        return (
            f"SGD: lr {self.lr:g}, momentum {self.momentum:g}, weight decay "
            f"{self.weight_decay:g}, {batch}, at most {self.max_steps} steps (patience "
            f"{self.patience})"
        )


@attrs.frozen
class PoisonConfig:
    """Adam (``torch.optim.Adam``) on the poisoned objective until train accuracy is 1 and
    validation accuracy 0, or ``steps`` run out."""

    steps: int = attrs.field(default=1500, validator=_pos)
    lr: float = attrs.field(default=0.01, validator=_pos)
    val_weight: float = attrs.field(default=1.0, validator=_pos)


@attrs.frozen
class WedgeConfig:
    """Data (``train``/``test`` points, ``margin``, arm ``thickness``) and the figure's grid."""

    train: int = 11
    test: int = 5
    margin: float = 0.15
    thickness: float = 0.12
    widths: tuple[int, ...] = (2, 4, 10, 15, 20)
    draws: int = 4
    loss_below: float = 0.4
    poison_steps: int = 2000
    poison_weight: float = 0.3  # < 1: fitting the training points comes first
    max_guesses: int = 400_000
    population: int = 2000  # fresh points for each boundary's accuracy on the distribution
    sgd_lr: float = 0.05
    sgd_steps: int = 3000
    poison_lr: float = 0.05


OptimizerConfig = GuessCheckConfig | PatternSearchConfig | GreedyConfig | SGDConfig
