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

from . import chapter2
from .lpball import predict
from .modelref import build_model
from .outcomes import make_record
from .plan import AttackStep, CertifyStep, IbpPlan, TrainStep


def label(step: TrainStep) -> str:
    a = step.action
    name = a.strategy.value + (f"({a.k})" if a.k is not None else "")
    if a.strategy.value == "pooled_patch":
        name += " " + "-".join(str(b) for b in step.options.pool)
    return name


def run_comparison(plan: IbpPlan, ctx: RunContext) -> Summary:
    from .run import _attack, _certify, _data, _train

    spec = plan.spec
    data = _data(plan, ctx)
    dev = torch.device(ctx.device)
    xs, ys = torch.as_tensor(data.train.x, device=dev), torch.as_tensor(data.train.y, device=dev)
    xt, yt = torch.as_tensor(data.test.x, device=dev), torch.as_tensor(data.test.y, device=dev)
    trains = [s for s in plan.steps if isinstance(s, TrainStep)]
    evals = [s for s in plan.steps if not isinstance(s, TrainStep)]
    rows, metrics = [], {}
    done = ctx.records.done_ids() if ctx.resume else frozenset()
    base = None
    for i, step in enumerate(trains):
        name = f"{i + 1}-{label(step)}"
        sub = attrs.evolve(ctx, out_dir=ctx.out_dir / name)
        torch.manual_seed(ctx.seed)
        model = build_model(
            spec.model, data.input_shape, data.num_classes, plan.model_options, ctx.allow_code
        ).to(dev)
        start = time.perf_counter()
        _train(plan, step, model, xs, ys, sub)
        seconds = time.perf_counter() - start
        model.eval()
        per = {}
        for e in evals:
            if isinstance(e, AttackStep):
                per["attack"] = _attack(plan, e, model, xt, yt, sub)
            elif isinstance(e, CertifyStep):
                per["certify"] = _certify(plan, e, model, xt, yt, sub)
        pred = predict(chapter2.scored_model(spec, model), xt)
        recs = [make_record(j, j, int(yt[j]), int(pred[j]), per, 0.0) for j in range(len(yt))]
        for r in recs:
            rid = f"{name}/{r.id}"
            if rid not in done:
                ctx.records.append(attrs.evolve(r, id=rid))
        n = max(1, len(recs))
        clean = sum(bool(r.values["clean_correct"]) for r in recs) / n
        cert = sum(r.status is Status.CERTIFIED for r in recs) / n
        emp = sum(r.values["clean_correct"] and not r.values.get("attack_success") for r in recs)
        base = seconds if base is None else base
        has_attack = "attack" in per
        rows.append(
            (
                label(step),
                f"{clean:.1%}",
                f"{emp / n:.1%}" if has_attack else "-",
                f"{cert:.1%}" if "certify" in per else "-",
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
