"""The few-shot comparison behind Tables 7.1-7.2: every optimizer on the same splits and inits.

For each training-set size and trial: draw a class-balanced split, one default initialisation
(shared by SGD, the local searches and the poisoned model), then run each configured optimizer
with the loss windows and score every model it recorded on the test set.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch

from .greedy import GreedyConfig, random_greedy
from .guess_check import GuessCheckConfig, guess_and_check
from .levels import LevelHit, LossWindow
from .loss_bins import TrialOutcome
from .losses import accuracy
from .models import FlatModel
from .pattern_search import PatternSearchConfig, pattern_search
from .poison import PoisonConfig, poison
from .sgd import SGDConfig, sgd
from .splits import FewShot

OptimizerConfig = GuessCheckConfig | PatternSearchConfig | GreedyConfig | SGDConfig

#: spec strategy name -> the function that runs it
RUNNERS: dict[type, tuple[str, Callable]] = {
    GuessCheckConfig: ("guess_and_check", guess_and_check),
    PatternSearchConfig: ("pattern_search", pattern_search),
    GreedyConfig: ("random_greedy", random_greedy),
    SGDConfig: ("sgd", sgd),
}


@attrs.frozen
class PoisonOutcome:
    samples: int
    trial: int
    train_accuracy: float
    val_accuracy: float
    steps: int

    @classmethod
    def from_json(cls, d) -> PoisonOutcome:
        return cls(
            int(d["samples"]),
            int(d["trial"]),
            float(d["train_accuracy"]),
            float(d["val_accuracy"]),
            int(d["steps"]),
        )


def trial_seed(seed: int, samples: int, trial: int) -> int:
    """Independent, reproducible seeds per (spec seed, training-set size, trial)."""
    return (seed * 1_000_003 + samples * 7_919 + trial * 104_729) % (2**62)


def test_accuracy(fm: FlatModel, hit: LevelHit, data: FewShot) -> float:
    with torch.no_grad():
        return float(accuracy(fm.logits(hit.theta[None], data.x_test), data.y_test)[0])


def run_optimizer(
    config: OptimizerConfig,
    fm: FlatModel,
    data: FewShot,
    theta0: torch.Tensor,
    windows: tuple[LossWindow, ...],
    seed: int,
) -> tuple[LevelHit | None, ...]:
    """One optimizer on one split; returns its hit per window."""
    _, fn = RUNNERS[type(config)]
    g = torch.Generator(device=theta0.device).manual_seed(seed)
    if isinstance(config, GuessCheckConfig):
        return fn(fm, data.x_train, data.y_train, windows, config, g).hits
    return fn(fm, data.x_train, data.y_train, theta0, windows, config, g).hits


def run_trial(
    optimizers: tuple[OptimizerConfig, ...],
    fm: FlatModel,
    data: FewShot,
    windows: tuple[LossWindow, ...],
    samples: int,
    trial: int,
    seed: int,
) -> tuple[TrialOutcome, ...]:
    """Every optimizer on the same split from the same initialisation."""
    theta0 = fm.default_init(torch.Generator(device=data.x_train.device).manual_seed(seed))
    out = []
    for k, config in enumerate(optimizers):
        hits = run_optimizer(config, fm, data, theta0, windows, seed + 1 + k)
        cells = tuple(
            None if h is None else (h.loss, test_accuracy(fm, h, data), h.cost) for h in hits
        )
        out.append(TrialOutcome(RUNNERS[type(config)][0], samples, trial, cells))
    return tuple(out)


def run_poison(
    fm: FlatModel, data: FewShot, val: int, steps: int, samples: int, trial: int, seed: int
) -> PoisonOutcome:
    """Table 7.1: fit the split while misclassifying ``val`` held-out points."""
    theta0 = fm.default_init(torch.Generator(device=data.x_train.device).manual_seed(seed))
    res = poison(
        fm,
        data.x_train,
        data.y_train,
        data.x_test[:val],
        data.y_test[:val],
        theta0,
        PoisonConfig(steps=steps),
    )
    return PoisonOutcome(samples, trial, res.train_accuracy, res.val_accuracy, res.steps)
