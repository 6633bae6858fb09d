"""Several ``train`` actions in one spec: a side-by-side comparison (Tables 2.3 and 2.5).

Each train action trains a fresh model from the same seed on the same data (its checkpoint in
its own sub-directory), then the spec's attack/certify actions run on it. Records are
``<strategy>/test-<i>``; the summary is one row per strategy: clean, empirical and certified
accuracy and training time, plus the time relative to the first strategy.
"""

from __future__ import annotations

import time

import attrs
import torch

from threatlang.backends.base import RunContext, Status, Summary, Table

from .modelref import build_model
from .plan import AttackStep, CertifyStep, IbpPlan, TrainStep


def label(step: TrainStep) -> str:
    a = step.action
    name = a.strategy + (f"({a.k})" if a.k is not None else "")
    if a.strategy == "pooled_patch":
        name += " " + "-".join(str(b) for b in step.options.pool)
    return name


def run_comparison(plan: IbpPlan, ctx: RunContext) -> Summary:
    from .run import _attack, _data, _train, evaluate

    spec = plan.spec
    data = _data(plan, ctx)
    dev = torch.device(ctx.device)
    xs, ys = torch.as_tensor(data.train.x, device=dev), torch.as_tensor(data.train.y, device=dev)
    xt, yt = torch.as_tensor(data.test.x, device=dev), torch.as_tensor(data.test.y, device=dev)
    trains = [s for s in plan.steps if isinstance(s, TrainStep)]
    evals = [s for s in plan.steps if not isinstance(s, TrainStep)]
    rows, metrics = [], {}
    base = None
    for i, step in enumerate(trains):
        name = f"{i + 1}-{label(step)}"
        sub = attrs.evolve(ctx, out_dir=ctx.out_dir / name)
        torch.manual_seed(ctx.seed)
        model = build_model(spec.model, data.input_shape, data.num_classes, ctx.allow_code, dev)
        start = time.perf_counter()
        _train(plan, step, model, xs, ys, sub)
        seconds = time.perf_counter() - start
        model.eval()
        attack = None
        for e in evals:
            if isinstance(e, AttackStep):
                attack = _attack(plan, e, model, xt, yt, sub)
        certify = next((e for e in reversed(evals) if isinstance(e, CertifyStep)), None)
        recs = evaluate(
            plan, certify, model, xt, yt, list(range(len(yt))), attack, 0.0, ctx, f"{name}/"
        )
        n = max(1, len(recs))
        clean = sum(bool(r.values["clean_correct"]) for r in recs) / n
        cert = sum(r.status is Status.CERTIFIED for r in recs) / n
        emp = sum(r.values["clean_correct"] and not r.values.get("attack_success") for r in recs)
        base = seconds if base is None else base
        has_attack = attack is not None
        rows.append(
            (
                label(step),
                f"{clean:.1%}",
                f"{emp / n:.1%}" if has_attack else "-",
                f"{cert:.1%}" if certify is not None else "-",
                f"{seconds:.1f}",
                f"{seconds / base:.2f}",
            )
        )
        key = label(step).replace(" ", "_")
        metrics[f"{key}.clean_accuracy"] = clean
        metrics[f"{key}.certified_accuracy"] = cert
        metrics[f"{key}.train_seconds"] = round(seconds, 2)
        if has_attack:
            metrics[f"{key}.empirical_accuracy"] = emp / n
    table = Table(
        f"{spec.name}: training strategies ({len(yt)} test images; Table 2.3)",
        ("strategy", "clean", "empirical", "certified", "train s", "x first"),
        rows,
    )
    return Summary(metrics, (table,))
