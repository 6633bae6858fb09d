"""Running a landscape plan: data, model, the comparison grid, the poison table, the wedge."""

from __future__ import annotations

import time
from functools import partial

import attrs
import numpy as np
import torch

from threatlang.report import Summary

from .config import GreedyOptions, GuessCheckOptions, PatternSearchOptions, SGDOptions
from .experiment import OptimizerConfig, PoisonOutcome, run_poison, run_trial, trial_seed
from .greedy import GreedyConfig
from .guess_check import GuessCheckConfig
from .levels import windows_from_edges
from .loss_bins import TrialOutcome
from .models import FlatModel
from .pattern_search import PatternSearchConfig
from .plan import LandscapePlan, OptimizerStep
from .results import (
    poison_record,
    poison_table,
    trial_record,
    volume_tables,
    wedge_record,
    wedge_table,
)
from .sgd import SGDConfig
from .splits import sample_few_shot, two_class_pool
from .wedge import WedgeConfig, plot_wedge, run_wedge


def optimizer_config(step: OptimizerStep) -> OptimizerConfig:
    o, t = step.options, step.train
    if isinstance(o, GuessCheckOptions):
        return GuessCheckConfig(bound=o.scale, batch=o.guess_batch, max_guesses=o.max_guesses)
    if isinstance(o, PatternSearchOptions):
        return PatternSearchConfig(step=o.step, shrink=o.shrink, max_evaluations=o.max_evaluations)
    if isinstance(o, GreedyOptions):
        return GreedyConfig(
            sigma=o.sigma, shrink=o.shrink, patience=o.patience, max_evaluations=o.max_evaluations
        )
    assert isinstance(o, SGDOptions)
    return SGDConfig(
        lr=t.lr,
        momentum=o.momentum,
        batch_size=t.batch_size,
        max_steps=t.epochs,
        patience=o.patience,
        weight_decay=o.weight_decay,
    )


def _pool(plan: LandscapePlan, ctx):
    data = ctx.data
    if data is None:
        from threatlang.data import load_dataset

        data = load_dataset(plan.spec.data, seed=ctx.seed)
    pool = two_class_pool(data.train.x, data.train.y, data.test.x, data.test.y, (0, 1))
    if plan.volume.standardise:  # like MNIST's mean/std transform, from the unlabelled pool
        (xtr, ytr), (xte, yte) = pool
        mean, std = float(xtr.mean()), float(xtr.std()) or 1.0
        pool = (
            (((xtr - mean) / std).astype(np.float32), ytr),
            (((xte - mean) / std).astype(np.float32), yte),
        )
    return pool


def _model(plan: LandscapePlan, ctx, input_shape) -> FlatModel:
    if ctx.model is not None:
        return FlatModel(ctx.model.to(ctx.device))
    from threatlang.models_io import load_model

    with torch.random.fork_rng(devices=[]):  # builders initialise with the global RNG: confine it
        torch.manual_seed(ctx.seed)
        module = load_model(
            plan.spec.model, input_shape, 2, allow_code=ctx.allow_code, device=ctx.device
        )
    return FlatModel(module)


def _linear(fm_input: tuple[int, ...], ctx) -> FlatModel:
    """Table 7.2's linear baseline: a single linear layer on the same inputs, trained by SGD."""
    import math

    from .models import mlp

    return FlatModel(mlp(math.prod(fm_input), (), 2).to(ctx.device))


def _linear_trial(config: SGDConfig, linear: FlatModel, data, windows, n: int, t: int, seed: int):
    return [
        attrs.evolve(o, optimizer="linear_sgd")
        for o in run_trial((config,), linear, data, windows, n, t, seed)
    ]


def _trial(ctx, ids, compute) -> list[TrialOutcome]:
    """Reuse a trial's records when resuming; otherwise compute and log the missing ones."""
    cached = [ctx.records.get(i) if ctx.resume else None for i in ids]
    if all(c is not None for c in cached):
        return [TrialOutcome.from_json(c.values) for c in cached]
    start = time.perf_counter()
    fresh = compute()
    for rid, o in zip(ids, fresh, strict=True):
        if ctx.records.get(rid) is None:
            ctx.records.append(trial_record(o, (time.perf_counter() - start) / len(fresh)))
    return list(fresh)


def _volume(plan: LandscapePlan, ctx):
    v = plan.volume
    pool = _pool(plan, ctx)
    shape = tuple(pool[0][0].shape[1:])
    fm = _model(plan, ctx, shape)
    windows = windows_from_edges(v.loss_bins)
    labels = tuple(w.label for w in windows)
    configs = tuple(optimizer_config(s) for s in plan.optimizers)
    names = tuple(s.name for s in plan.optimizers)
    sgd_config = next((c for c in configs if isinstance(c, SGDConfig)), SGDConfig())
    linear = _linear(shape, ctx) if v.linear_baseline else None
    outcomes, poisons = [], []
    jobs = [(n, t) for n in v.samples for t in range(v.trials)]
    for n, t in ctx.progress.track(jobs, total=len(jobs), description="volume: few-shot trials"):
        seed = trial_seed(ctx.seed, n, t)
        data = sample_few_shot(pool, n, seed, device=ctx.device)
        ids = [f"volume/n{n}/t{t}/{name}" for name in names]
        outcomes += _trial(ctx, ids, partial(run_trial, configs, fm, data, windows, n, t, seed))
        if linear is not None:
            ids = [f"volume/n{n}/t{t}/linear_sgd"]
            outcomes += _trial(
                ctx, ids, partial(_linear_trial, sgd_config, linear, data, windows, n, t, seed)
            )
        if v.poison:
            cached = ctx.records.get(f"poison/n{n}/t{t}") if ctx.resume else None
            if cached is not None:
                poisons.append(PoisonOutcome.from_json(cached.values))
                continue
            start = time.perf_counter()
            p = run_poison(fm, data, v.poison_val, v.poison_steps, n, t, seed)
            ctx.records.append(poison_record(p, time.perf_counter() - start))
            poisons.append(p)
    shown = names + (("linear_sgd",) if linear is not None else ())
    tables, metrics = volume_tables(outcomes, labels, v.samples, shown, v.trials)
    if v.poison:
        table, more = poison_table(poisons, v.samples)
        tables.append(table)
        metrics.update(more)
    return tables, metrics


def _wedge(plan: LandscapePlan, ctx):
    w = plan.wedge
    config = WedgeConfig(
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
    ctx.console.print("wedge: training poisoned, SGD and Guess & Check networks per width")
    boundaries, data = run_wedge(config, ctx.seed, ctx.device)
    counts: dict[tuple[str, int], int] = {}
    for b in boundaries:
        k = counts.get((b.method, b.width), 0)
        counts[(b.method, b.width)] = k + 1
        record = wedge_record(b, k)
        if not (ctx.resume and ctx.records.get(record.id) is not None):
            ctx.records.append(record)  # the wedge is cheap and seeded: rerun, log once
    path = ctx.artifact("wedge_boundaries.png")
    plot_wedge(boundaries, data, w.widths, path)
    table, metrics = wedge_table(boundaries, w.widths)
    return [table], metrics, [path]


def run_plan(plan: LandscapePlan, ctx) -> Summary:
    tables, metrics, plots = [], {}, []
    if plan.volume is not None:
        t, m = _volume(plan, ctx)
        tables += t
        metrics.update(m)
    if plan.wedge is not None:
        t, m, p = _wedge(plan, ctx)
        tables += t
        metrics.update(m)
        plots += p
    return Summary(metrics, tuple(tables), tuple(plots))
