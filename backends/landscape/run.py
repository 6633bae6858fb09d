"""Running a landscape plan: data, models, the comparison grid, the poison table, the wedge.

Only the science lives here; data (`ctx.splits`), seeded model building (`ctx.build_model`),
random streams, record-once/resume (`run_items`) and stage timings (`ctx.timings`) are the
core's run scaffolding.
"""

from __future__ import annotations

import math
from functools import partial
from typing import TYPE_CHECKING

import attrs

from threatlang.errors import UsageError
from threatlang.ir import Option
from threatlang.report import Summary
from threatlang.runloop import run_items

from .experiment import TrialSetup, run_trial_item, standardise, trial_ids
from .levels import windows_from_edges
from .loss_bins import PoisonOutcome, TrialOutcome
from .models import FlatModel, mlp
from .records import wedge_record
from .results import poison_table, volume_tables, wedge_table
from .wedge import plot_wedge, run_wedge

if TYPE_CHECKING:  # annotations only: run imports no plan at run time (no cycle)
    from .plan import LandscapePlan


def _template(plan: LandscapePlan, ctx, shape, classes: int, width: float | None):
    """The spec's model (or the caller's), at `width` when the study scales it (Table 7.6)."""
    from threatlang.models_io import load_model

    ref = plan.spec.model
    if width is not None:
        if ctx.model is not None:
            raise UsageError(
                "evaluate volume { widths [...] } rebuilds the spec's builtin model at each "
                "width; it cannot rescale a model handed to run(): drop `widths`."
            )
        options = tuple(o for o in ref.options if o.name != "width") + (Option("width", width),)
        ref = attrs.evolve(ref, options=options)
    stream = "model" if width is None else f"model/w{width:g}"
    build = partial(load_model, ref, shape, classes, allow_code=ctx.allow_code, device="cpu")
    return FlatModel(ctx.build_model(stream, build))


def _volume(plan: LandscapePlan, ctx):
    v = plan.volume
    data = ctx.splits(plan.spec)
    pool = ((data.train.x, data.train.y), (data.test.x, data.test.y))
    if v.standardise:
        pool = standardise(pool)
    shape = tuple(pool[0][0].shape[1:])
    classes = int(data.num_classes)
    if classes < 2:
        raise UsageError(f"evaluate volume needs at least two classes; the data has {classes}.")
    models = {w: _template(plan, ctx, shape, classes, w) for w in v.widths}
    linear = None
    if v.linear is not None:
        build = partial(mlp, math.prod(shape), (), classes)
        linear = FlatModel(ctx.build_model("linear", build))
    setup = TrialSetup(
        pool=pool,
        models=models,
        linear=linear,
        optimizers=tuple(s.config for s in plan.optimizers),
        windows=windows_from_edges(v.loss_bins),
        poison=v.poison,
        poison_val=v.poison_val,
        seed=ctx.seed,
        device=ctx.device,
    )
    grid = [(w, n, t) for w in v.widths for n in v.samples for t in range(v.trials)]
    items = [(trial_ids(setup, *item), item) for item in grid]
    with ctx.timings.measure("volume"):
        records = run_items(ctx, items, partial(run_trial_item, setup), "volume: few-shot trials")
    outcomes = [TrialOutcome.from_json(r.values) for r in records if r.id.startswith("volume/")]
    poisons = [PoisonOutcome.from_json(r.values) for r in records if r.id.startswith("poison/")]
    names = tuple(s.name for s in plan.optimizers) + (("linear_sgd",) if linear else ())
    labels = tuple(w.label for w in setup.windows)
    tables, metrics = volume_tables(outcomes, labels, v.samples, v.widths, names, v.trials)
    if v.poison is not None:
        table, more = poison_table(poisons, v.samples, v.widths)
        tables.append(table)
        metrics.update(more)
    return tables, metrics


def _wedge(plan: LandscapePlan, ctx):
    w = plan.wedge
    ctx.console.print("wedge: training poisoned, SGD and Guess & Check networks per width")
    with ctx.timings.measure("wedge"):
        boundaries, data = run_wedge(w, ctx.seed, ctx.device)
    counts: dict[tuple[str, int], int] = {}
    done = ctx.records.done_ids()
    for b in boundaries:
        k = counts.get((b.method, b.width), 0)
        counts[(b.method, b.width)] = k + 1
        record = wedge_record(b, k)
        if record.id not in done:
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
