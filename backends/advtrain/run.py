"""Running an advtrain plan: data, models, side-by-side training, evaluation, attacks, report."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from threatlang.report import Summary

from . import pyramid as pyr
from .attacks import Norm, ifgsm, pgd, robust_accuracy
from .config import CORRUPTION_NAMES
from .corruptions import Corruption
from .evaluate import CorruptionSuite, accuracy, corruption_errors
from .experiment import Settings, compare
from .plan import AdvTrainPlan, AttackStep
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
from .schedule import RadiusSchedule
from .train import TrainConfig
from .upat import UPAT
from .vit import vit_tiny


def run_plan(plan: AdvTrainPlan, ctx) -> Summary:
    before = torch.get_num_threads()
    torch.set_num_threads(plan.options.threads)
    try:
        return _run(plan, ctx)
    finally:
        torch.set_num_threads(before)


def _load_data(plan: AdvTrainPlan, ctx):
    if ctx.data is not None:
        return ctx.data
    from threatlang.data import load_dataset

    return load_dataset(plan.spec.data, seed=ctx.seed)


def _model_factory(plan: AdvTrainPlan, ctx, shape, classes: int) -> Callable[[], nn.Module]:
    """Fresh copies of one initial model, so every method starts from the same weights."""
    ref = plan.spec.model
    if ctx.model is not None:
        base = ctx.model
    elif ref is not None and ref.architecture == "vit_tiny" and ref.kind.value == "builtin":
        opts = {o.name: o.value for o in ref.options}
        base = vit_tiny(shape, classes, torch.Generator().manual_seed(ctx.seed), **opts)
    else:
        from threatlang.models_io import load_model

        with torch.random.fork_rng(devices=[]):  # other builders use the global RNG
            torch.manual_seed(ctx.seed)
            base = load_model(ref, shape, classes, allow_code=ctx.allow_code, device="cpu")
    return lambda: copy.deepcopy(base).to(ctx.device).train()


def _schedule(plan: AdvTrainPlan, radius: float, epochs: int, decay: bool) -> RadiusSchedule:
    o = plan.options
    if not decay:
        return RadiusSchedule.constant(radius)
    start = round(0.1 * epochs) if o.schedule_start is None else o.schedule_start
    end = 0.1 * radius if o.radius_end is None else o.radius_end
    return RadiusSchedule(radius, end, start, max(epochs, start + 1))


def _settings(plan: AdvTrainPlan, epochs: int) -> Settings:
    t, o = plan.train, plan.options
    return Settings(
        pyramid=pyr.PyramidConfig(plan.scales, plan.multipliers),
        upat_radius=_schedule(plan, plan.radius, epochs, o.radius_schedule),
        pat_radius=_schedule(plan, plan.pat_radius, epochs, o.radius_schedule),
        upat_decay=_schedule(plan, plan.radius, epochs, True),
        pat_decay=_schedule(plan, plan.pat_radius, epochs, True),
        upat_step_size=plan.step_size,
        adv_weight=o.adv_weight,
        train=TrainConfig(
            t.epochs, t.batch_size, t.lr, o.weight_decay, float(max(t.warmup, 1)), o.augment
        ),
    )


def _attack_fn(step: AttackStep, eps: float, seed: int):
    def run(model, x, y):
        if step.method == "ifgsm":
            return ifgsm(model, x, y, eps, step.steps, step.step_size)
        g = torch.Generator(x.device).manual_seed(seed)
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


def _save_rows(rows: dict[str, Row], path) -> None:
    """What a resumed run needs to skip training: every row's figures (models are saved apart)."""
    out = {
        label: {
            "clean_accuracy": r.clean_accuracy,
            "corruption_errors": [[k.value, s, e] for (k, s), e in r.corruption_errors.items()],
            "seconds_per_epoch": r.seconds_per_epoch,
            "passes_per_step": r.passes_per_step,
            "calls_per_step": r.calls_per_step,
        }
        for label, r in rows.items()
    }
    path.write_text(json.dumps(out, indent=2) + "\n")


def _resume(plan: AdvTrainPlan, ctx, new_model):
    """Rows, models and plots of a finished training phase, or None if anything is missing."""
    saved = ctx.out_dir / "methods.json"
    labels = [m.label for m in plan.methods]
    if not saved.exists() or any(not (ctx.out_dir / f"{lb}.pt").exists() for lb in labels):
        return None
    data = json.loads(saved.read_text())
    if sorted(data) != sorted(labels):
        return None
    rows, models = {}, {}
    for label in labels:
        d = data[label]
        errors = {(Corruption(k), int(s)): float(e) for k, s, e in d["corruption_errors"]}
        rows[label] = Row(label, d["clean_accuracy"], errors, d["seconds_per_epoch"],
                          d["passes_per_step"], d["calls_per_step"])  # fmt: skip
        model = new_model()
        model.load_state_dict(torch.load(ctx.out_dir / f"{label}.pt", weights_only=True))
        models[label] = model.eval()
    plots = sorted(ctx.out_dir.glob("*_pattern.png"))
    return rows, models, plots


def _run(plan: AdvTrainPlan, ctx) -> Summary:
    device = ctx.device
    data = _load_data(plan, ctx)

    def tensors(split):
        x = torch.from_numpy(np.ascontiguousarray(split.x, dtype=np.float32)).to(device)
        return x, torch.from_numpy(np.asarray(split.y, dtype=np.int64)).to(device)

    train, test = tensors(data.train), tensors(data.test)
    shape = tuple(train[0].shape[1:])
    new_model = _model_factory(plan, ctx, shape, data.num_classes)
    suite = None
    if plan.corruptions is not None:
        c = plan.corruptions
        names = c.corruptions or CORRUPTION_NAMES
        suite = CorruptionSuite(tuple(Corruption(n) for n in names), tuple(c.severities), c.seed)

    rows: dict[str, Row] = {}
    models: dict[str, nn.Module] = {}
    plots = []
    resumed = _resume(plan, ctx, new_model) if plan.train is not None and ctx.resume else None
    if resumed is not None:
        rows, models, plots = resumed
    elif plan.train is not None:
        settings = _settings(plan, plan.train.epochs)
        jobs = len(plan.methods) * plan.train.epochs

        def track(items):
            return ctx.progress.track(items, total=jobs, description="train (method x epoch)")

        results = compare(
            plan.methods, settings, new_model, train, test, ctx.seed, device, suite, track
        )
        for label, r in results.items():
            rows[label] = Row(label, r.clean_accuracy, r.corruption_errors, r.seconds_per_epoch,
                              r.passes_per_step, r.calls_per_step)  # fmt: skip
            models[label] = r.model
            torch.save(r.model.state_dict(), ctx.artifact(f"{label}.pt"))
            if isinstance(r.method, UPAT):
                path = ctx.artifact(f"{label}_pattern.png")
                plots.append(plot_pattern(r.method.pattern, r.method.cfg.pyramid.scales, path))
        _save_rows(rows, ctx.artifact("methods.json"))
    else:
        model = new_model().eval()
        errors = corruption_errors(model, *test, suite) if suite is not None else {}
        rows["model"] = Row("model", accuracy(model, *test), errors)
        models["model"] = model

    baseline = rows.get("standard")
    metrics_by_method = method_metrics(rows, baseline)
    done = ctx.records.done_ids()
    for label, row in rows.items():
        record = method_record(row, metrics_by_method[label])
        if record.id not in done:
            ctx.records.append(record)

    robust: dict[tuple[str, str, float], float] = {}
    for step in plan.attacks:
        n = len(test[0]) if step.examples is None else min(step.examples, len(test[0]))
        xs, ys = test[0][:n], test[1][:n]
        jobs = [(label, eps) for eps in step.eps for label in models]
        for label, eps in ctx.progress.track(jobs, description=f"attack {step.method}"):
            model = models[label]
            with torch.no_grad():
                clean_ok = model.eval()(xs).argmax(1) == ys
            acc, fooled = robust_accuracy(model, xs, ys, _attack_fn(step, eps, ctx.seed))
            turned = torch.nonzero(fooled & clean_ok).flatten()
            key = f"{step.method}_{step.norm.value}"
            robust[(label, key, eps)] = acc
            first = int(turned[0]) if len(turned) else None
            record = attack_record(label, key, eps, acc, float(clean_ok.float().mean()), first)
            if record.id not in done:
                ctx.records.append(record)

    tables = [method_table(rows, baseline)]
    if suite is not None and baseline is not None:
        tables.append(corruption_table(rows, baseline))
    if robust:
        tables.append(attack_table(robust))
    return Summary(
        metrics=_metrics(plan, rows, metrics_by_method, robust), tables=tables, plots=plots
    )


def _metrics(plan: AdvTrainPlan, rows, by_method, robust) -> dict:
    main = plan.main if plan.main in rows else next(iter(rows))
    out: dict = {
        "main_method": main,
        "clean_accuracy": rows[main].clean_accuracy,
        "corruption_accuracy": rows[main].corruption_accuracy,
        "mce": by_method[main]["mce"],
        "methods": by_method,
    }
    if "standard" in rows:
        out["baseline_clean_accuracy"] = rows["standard"].clean_accuracy
    upats = [k for k in rows if k.startswith("upat")]
    upat = (
        main if main.startswith("upat") else ("upat" if "upat" in rows else next(iter(upats), None))
    )
    if upat is not None and by_method[upat]["cost_ratio"] is not None:
        out["upat_cost_ratio"] = by_method[upat]["cost_ratio"]
    pats = {
        k: v["cost_ratio"] for k, v in by_method.items() if k.startswith("pat") and v["cost_ratio"]
    }
    if pats:
        out["pat_cost_ratios"] = pats
    if robust:
        nested: dict = {}
        for (label, attack, eps), acc in robust.items():
            nested.setdefault(label, {})[f"{attack}@{eps:.4g}"] = acc
        out["robust_accuracy"] = nested
    return out
