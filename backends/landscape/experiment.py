"""The few-shot comparison behind Tables 7.1-7.4 and 7.6: every optimizer on the same splits
and initialisations.

For each (model width,) training-set size and trial: draw a class-balanced split, one default
initialisation (shared by SGD, the local searches and the poisoned model), then run each
configured optimizer with the loss windows and score every model it recorded on the test set.
A trial is one work item of the shared run loop: a top-level function over plain data, so it
runs in-process or on Ray and is recorded once. Random streams are explicit generators named
after the trial (`threatlang.runtime`), made on the device that draws from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs
import numpy as np
import torch

from threatlang.report import Record
from threatlang.runtime import generator, stream_seed

from .config import (
    GreedyConfig,
    GuessCheckConfig,
    OptimizerConfig,
    PatternSearchConfig,
    PoisonConfig,
    SGDConfig,
)
from .greedy import random_greedy
from .guess_check import guess_and_check
from .levels import LevelHit, LossWindow
from .loss_bins import PoisonOutcome, TrialOutcome
from .losses import accuracy
from .models import FlatModel
from .pattern_search import pattern_search
from .poison import poison
from .records import poison_record, trial_record
from .sgd import sgd
from .splits import FewShot, sample_few_shot

#: resolved config type -> (the optimizer's name in records and metrics, its function)
RUNNERS: dict[type, tuple[str, Callable]] = {
    GuessCheckConfig: ("guess_and_check", guess_and_check),
    PatternSearchConfig: ("pattern_search", pattern_search),
    GreedyConfig: ("random_greedy", random_greedy),
    SGDConfig: ("sgd", sgd),
}


def test_accuracy(fm: FlatModel, hit: LevelHit, data: FewShot) -> float:
    with torch.no_grad():
        return float(accuracy(fm.logits(hit.theta[None], data.x_test), data.y_test)[0])


def run_optimizer(
    config: OptimizerConfig,
    fm: FlatModel,
    data: FewShot,
    theta0: torch.Tensor,
    windows: tuple[LossWindow, ...],
    g: torch.Generator,
) -> tuple[LevelHit | None, ...]:
    """One optimizer on one split; returns its hit per window."""
    _, fn = RUNNERS[type(config)]
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
    stream: str,
) -> tuple[TrialOutcome, ...]:
    """Every optimizer on the same split from the same initialisation; the random streams are
    `{stream}/init` and `{stream}/{optimizer}` of the run `seed`."""
    device = data.x_train.device
    theta0 = fm.default_init(generator(seed, f"{stream}/init", device))
    out = []
    for config in optimizers:
        name = RUNNERS[type(config)][0]
        hits = run_optimizer(
            config, fm, data, theta0, windows, generator(seed, f"{stream}/{name}", device)
        )
        cells = tuple(
            None if h is None else (h.loss, test_accuracy(fm, h, data), h.cost) for h in hits
        )
        out.append(TrialOutcome(name, samples, trial, cells))
    return tuple(out)


def run_poison(
    fm: FlatModel,
    data: FewShot,
    val: int,
    config: PoisonConfig,
    samples: int,
    trial: int,
    seed: int,
    stream: str,
) -> PoisonOutcome:
    """Table 7.1: fit the split while misclassifying ``val`` held-out points (from the same
    initialisation as the optimizers)."""
    theta0 = fm.default_init(generator(seed, f"{stream}/init", data.x_train.device))
    res = poison(
        fm,
        data.x_train,
        data.y_train,
        data.x_test[:val],
        data.y_test[:val],
        theta0,
        config,
    )
    return PoisonOutcome(samples, trial, res.train_accuracy, res.val_accuracy, res.steps)


# ----------------------------------------------------------------- one trial, one work item
@attrs.frozen(eq=False)
class TrialSetup:
    """What every trial shares (plain data and modules: picklable for Ray)."""

    pool: tuple = attrs.field(repr=False)  # ((x_train, y_train), (x_test, y_test)) numpy
    models: dict = attrs.field(repr=False)  # width (None: the spec's model) -> FlatModel
    linear: FlatModel | None = attrs.field(repr=False)
    optimizers: tuple[OptimizerConfig, ...]
    windows: tuple[LossWindow, ...]
    poison: PoisonConfig | None
    poison_val: int
    seed: int
    device: str


def trial_prefix(width: float | None, samples: int, trial: int) -> str:
    """Record-id prefix (and random-stream name) of one trial."""
    w = "" if width is None else f"w{width:g}/"
    return f"volume/{w}n{samples}/t{trial}"


def poison_id(width: float | None, samples: int, trial: int) -> str:
    w = "" if width is None else f"w{width:g}/"
    return f"poison/{w}n{samples}/t{trial}"


def trial_ids(setup: TrialSetup, width: float | None, samples: int, trial: int) -> tuple:
    prefix = trial_prefix(width, samples, trial)
    ids = [f"{prefix}/{RUNNERS[type(c)][0]}" for c in setup.optimizers]
    if setup.linear is not None:
        ids.append(f"{prefix}/linear_sgd")
    if setup.poison is not None:
        ids.append(poison_id(width, samples, trial))
    return tuple(ids)


def run_trial_item(setup: TrialSetup, item: tuple[float | None, int, int]) -> tuple[Record, ...]:
    """One trial's records: each optimizer, the linear baseline, the poisoned model."""
    width, n, t = item
    prefix = trial_prefix(width, n, t)
    data = sample_few_shot(setup.pool, n, stream_seed(setup.seed, f"{prefix}/split"), setup.device)
    fm = setup.models[width]
    records: list[Record] = []
    start = time.perf_counter()
    outcomes = run_trial(setup.optimizers, fm, data, setup.windows, n, t, setup.seed, prefix)
    each = (time.perf_counter() - start) / max(1, len(outcomes))
    records += [trial_record(prefix, o, width, each) for o in outcomes]
    if setup.linear is not None:
        sgd_config = next((c for c in setup.optimizers if isinstance(c, SGDConfig)), SGDConfig())
        start = time.perf_counter()
        (lin,) = run_trial((sgd_config,), setup.linear, data, setup.windows, n, t, setup.seed,
                           f"{prefix}/linear")  # fmt: skip
        lin = attrs.evolve(lin, optimizer="linear_sgd")
        records.append(trial_record(prefix, lin, width, time.perf_counter() - start))
    if setup.poison is not None:
        start = time.perf_counter()
        p = run_poison(fm, data, setup.poison_val, setup.poison, n, t, setup.seed, prefix)
        p = attrs.evolve(p, width=width)
        records.append(poison_record(poison_id(width, n, t), p, time.perf_counter() - start))
    return tuple(records)


def standardise(pool: tuple) -> tuple:
    """Like MNIST's mean/std transform, with statistics from the training pool only."""
    (xtr, ytr), (xte, yte) = pool
    mean, std = float(xtr.mean()), float(xtr.std()) or 1.0
    return (
        (((xtr - mean) / std).astype(np.float32), ytr),
        (((xte - mean) / std).astype(np.float32), yte),
    )
