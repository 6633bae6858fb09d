"""Running an advtrain plan: data, models, side-by-side training, evaluation, attacks, report.

Only the science lives here. Data come from `ctx.splits`, the initial model from
`ctx.build_model` (one initialisation copied to every method), random streams from named
generators on the run's device, the trained models from `ctx.checkpoint` (one checkpoint of
all methods: trained, or loaded on --resume), and stage seconds from `ctx.timings`, so the
seconds per epoch a resumed run reports are those the first run measured.
"""

from __future__ import annotations

import copy
import json
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from threatlang.report import Summary
from threatlang.runtime import generator

from . import pyramid as pyr
from .attacks import Norm, ifgsm, pgd, robust_accuracy
from .corruptions import Corruption
from .evaluate import CorruptionSuite
from .experiment import Settings, evaluate_models, train_side_by_side
from .results import (
    Row,
    attack_record,
    attack_table,
    corruption_table,
    method_metrics,
    method_record,
    method_table,
    plot_pattern,
)
from .train import TrainConfig
from .upat import UPAT

if TYPE_CHECKING:  # annotations only: run imports no plan at run time (no cycle)
    from .plan import AdvTrainPlan, AttackStep

CHECKPOINT = "models.pt"
FACTS = "training.json"


def run_plan(plan: AdvTrainPlan, ctx) -> Summary:
    before = torch.get_num_threads()
    torch.set_num_threads(plan.options.threads)
    try:
        return _run(plan, ctx)
    finally:
        torch.set_num_threads(before)


def _initial_model(plan: AdvTrainPlan, ctx, shape, classes: int) -> nn.Module:
    """The one initial model every method starts from (the caller's, or the spec's)."""
    from functools import partial

    from threatlang.models_io import load_model

    build = partial(
        load_model, plan.spec.model, shape, classes, allow_code=ctx.allow_code, device="cpu"
    )
    return ctx.build_model("model", build).train()


def settings(plan: AdvTrainPlan) -> Settings:
    t, o = plan.train, plan.options
    return Settings(
        pyramid=pyr.PyramidConfig(plan.scales, plan.multipliers),
        upat_radius=plan.radius,
        pat_radius=plan.pat_radius,
        upat_step_size=plan.step_size,
        adv_weight=o.adv_weight,
        train=TrainConfig(
            t.epochs, t.batch_size, t.lr, t.weight_decay, float(t.warmup_epochs), t.augment
        ),
        decay_all=o.radius_schedule,
        decay_start=plan.schedule_start,
        decay_end=plan.radius_end,
    )


def _attack_fn(step: AttackStep, eps: float, seed: int, stream: str):
    def run(model, x, y):
        if step.method == "ifgsm":
            return ifgsm(model, x, y, eps, step.steps, step.step_size)
        g = generator(seed, stream, x.device)
        norm = Norm(step.norm.value)
        best = x
        for _ in range(step.restarts):  # per example, keep the first restart that fools it
            adv = pgd(model, x, y, eps, step.steps, step.step_size, norm, g)
            with torch.no_grad():
                fooled = model(adv).argmax(1) != y
                done = model(best).argmax(1) != y
            best = torch.where((fooled & ~done).view(-1, *([1] * (x.dim() - 1))), adv, best)
        return best

    return run


def _train(plan: AdvTrainPlan, ctx, models: dict[str, nn.Module], train) -> dict:
    """The training stage: every method side by side; facts and figures saved beside it."""
    jobs = len(plan.methods) * plan.train.epochs

    def track(items):
        return ctx.progress.track(items, total=jobs, description="train (method x epoch)")

    facts = train_side_by_side(
        plan.methods, settings(plan), models, train, ctx.seed, ctx.device, track
    )
    saved = {}
    for label, f in facts.items():
        ctx.timings.record(f"epoch/{label}", f.seconds_per_epoch)
        saved[label] = {"passes_per_step": f.passes_per_step, "calls_per_step": f.calls_per_step}
        if isinstance(f.method, UPAT):
            path = ctx.artifact(f"{label}_pattern.png")
            plot_pattern(f.method.pattern, f.method.cfg.pyramid.scales, path)
    ctx.artifact(FACTS).write_text(json.dumps(saved, indent=2) + "\n")
    return saved


def _suite(plan: AdvTrainPlan) -> CorruptionSuite | None:
    c = plan.corruptions
    if c is None:
        return None
    return CorruptionSuite(tuple(Corruption(n) for n in c.corruptions), c.severities, c.seed)


def _reference(plan: AdvTrainPlan, ctx, train, test, classes: int, suite):
    from .reference import reference_errors

    with ctx.timings.measure("reference"):
        return reference_errors(
            train, test, classes, suite, plan.corruptions.reference_cache,
            plan.corruptions.batch_size,
        )  # fmt: skip


def _run(plan: AdvTrainPlan, ctx) -> Summary:
    device = ctx.device
    data = ctx.splits(plan.spec)

    def tensors(split):
        x = torch.from_numpy(np.ascontiguousarray(split.x, dtype=np.float32)).to(device)
        return x, torch.from_numpy(np.asarray(split.y, dtype=np.int64)).to(device)

    train, test = tensors(data.train), tensors(data.test)
    shape = tuple(train[0].shape[1:])
    classes = int(data.num_classes)
    base = _initial_model(plan, ctx, shape, classes)
    suite = _suite(plan)

    facts: dict = {}
    if plan.train is not None:
        models = {m.label: copy.deepcopy(base) for m in plan.methods}
        group = nn.ModuleDict(models)
        saved, loaded = ctx.checkpoint(
            CHECKPOINT, group, lambda: _train(plan, ctx, models, train), stage="train"
        )
        facts = json.loads((ctx.out_dir / FACTS).read_text()) if loaded else saved
    else:
        models = {"model": base}
    for m in models.values():
        m.eval()

    done = ctx.records.done_ids()
    rows: dict[str, Row] = {}
    todo = {}
    for label, model in models.items():
        record = ctx.records.get(f"method/{label}") if f"method/{label}" in done else None
        if record is not None and "corruption_errors" in record.values:
            rows[label] = _row_from_record(label, record.values)
        else:
            todo[label] = model
    with ctx.timings.measure("evaluate"):
        evaluated = evaluate_models(todo, test, suite)
    for label, (clean, errors) in evaluated.items():
        f = facts.get(label, {})
        rows[label] = Row(
            label, clean, errors, ctx.timings.get(f"epoch/{label}"),
            f.get("passes_per_step"), f.get("calls_per_step"),
        )  # fmt: skip
    rows = {label: rows[label] for label in models}

    reference = None
    if suite is not None:
        reference = _reference(plan, ctx, train, test, classes, suite)
    standard = rows.get("standard")
    by_method = method_metrics(rows, reference, standard)
    for label, row in rows.items():
        record = method_record(row, by_method[label])
        if record.id not in done:
            ctx.records.append(record)

    robust = _attacks(plan, ctx, models, test, done)
    tables = [method_table(rows, reference, standard)]
    if suite is not None:
        tables.append(corruption_table(rows, reference))
    if robust:
        tables.append(attack_table(robust))
    plots = sorted(ctx.out_dir.glob("*_pattern.png"))
    metrics = _metrics(plan, rows, by_method, robust, reference)
    return Summary(metrics=metrics, tables=tables, plots=plots)


def _row_from_record(label: str, values: dict) -> Row:
    errors = {
        (Corruption(k.split("/")[0]), int(k.split("/")[1])): float(e)
        for k, e in values["corruption_errors"].items()
    }
    return Row(
        label, values["clean_accuracy"], errors, values.get("seconds_per_epoch"),
        values.get("passes_per_step"), values.get("calls_per_step"),
    )  # fmt: skip


def _attacks(plan: AdvTrainPlan, ctx, models, test, done) -> dict:
    robust: dict[tuple[str, str, float], float] = {}
    for step in plan.attacks:
        n = len(test[0]) if step.examples is None else min(step.examples, len(test[0]))
        xs, ys = test[0][:n], test[1][:n]
        jobs = [(label, eps) for eps in step.eps for label in models]
        for label, eps in ctx.progress.track(jobs, description=f"attack {step.method}"):
            key = f"{step.method}_{step.norm.value}"
            rid = f"attack/{label}/{key}/{eps:.6g}"
            if rid in done:
                robust[(label, key, eps)] = float(ctx.records.get(rid).values["robust_accuracy"])
                continue
            model = models[label]
            with torch.no_grad():
                clean_ok = model(xs).argmax(1) == ys
            attack = _attack_fn(step, eps, ctx.seed, f"attack/{label}/{key}/{eps:.6g}")
            with ctx.timings.measure(f"attack/{label}/{key}/{eps:.6g}"):
                acc, fooled = robust_accuracy(model, xs, ys, attack)
            turned = torch.nonzero(fooled & clean_ok).flatten()
            robust[(label, key, eps)] = acc
            first = int(turned[0]) if len(turned) else None
            ctx.records.append(
                attack_record(label, key, eps, acc, float(clean_ok.float().mean()), first)
            )
    return robust


def _metrics(plan: AdvTrainPlan, rows, by_method, robust, reference) -> dict:
    main = plan.main if plan.main in rows else next(iter(rows))
    out: dict = {
        "main_method": main,
        "clean_accuracy": rows[main].clean_accuracy,
        "corruption_accuracy": rows[main].corruption_accuracy,
        "mce": by_method[main]["mce"],
        "methods": by_method,
        "baseline_clean_accuracy": rows["standard"].clean_accuracy if "standard" in rows else None,
        "reference_clean_accuracy": None if reference is None else reference.clean_accuracy,
        "reference_corruption_accuracy": None,
        "upat_cost_ratio": None,
        "pat_cost_ratios": None,
        "robust_accuracy": None,
    }
    if reference is not None:
        from .evaluate import corruption_accuracy

        out["reference_corruption_accuracy"] = corruption_accuracy(reference.errors)
    upats = [k for k in rows if k.startswith("upat")]
    upat = (
        main if main.startswith("upat") else ("upat" if "upat" in rows else next(iter(upats), None))
    )
    if upat is not None and by_method[upat]["cost_ratio"] is not None:
        out["upat_cost_ratio"] = by_method[upat]["cost_ratio"]
    pats = {
        k: v["cost_ratio"] for k, v in by_method.items() if k.startswith("pat") and v["cost_ratio"]
    }
    out["pat_cost_ratios"] = pats or None
    if robust:
        nested: dict = {}
        for (label, attack, eps), acc in robust.items():
            nested.setdefault(label, {})[f"{attack}@{eps:.4g}"] = acc
        out["robust_accuracy"] = nested
    return out
