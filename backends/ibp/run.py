"""Running a compiled ibp program on one model: data, model, train, attack, certify, summary.

A spec with several `train` actions is a side-by-side comparison (:mod:`.compare`).
"""

from __future__ import annotations

import attrs

from threatlang.backends.base import RunContext, Summary
from threatlang.backends.choices import Strategy
from threatlang.ir.threats import LpBall

from .chapter2 import shape_transfer
from .compare import run_comparison
from .metrics import as_metrics
from .outcomes import Tally, loss_table, metrics_table, single_summary
from .plot import write_plot
from .stages import (
    attack_stage,
    certify_how,
    certify_stage,
    load_data,
    make_model,
    todo_images,
    train_stage,
)
from .steps import Program


def run_program(program: Program, ctx: RunContext) -> Summary:
    if len(program.trains) > 1:
        return run_comparison(program, ctx)
    spec = program.spec
    data = load_data(program, ctx)
    model = make_model(program, ctx, data)
    train = program.trains[0] if program.trains else None
    losses = train_stage(program, train, model, data, ctx) if train is not None else []
    model.eval()
    attack = None
    if program.attack is not None and todo_images(ctx, len(data.yt)):
        attack = attack_stage(program, program.attack, model, data, ctx)
    records = certify_stage(program, model, data, attack, ctx)
    tally = Tally.of(records, program.attack is not None, program.certify is not None)
    seconds = {
        "train": ctx.timings.get("train") if train is not None else None,
        "attack": ctx.timings.get("attack") if program.attack is not None else None,
        "certify": ctx.timings.get("certify") if program.certify is not None else None,
    }
    summary = single_summary(tally, seconds)
    tables = [metrics_table(_title(program, len(records)), tally, seconds)]
    if losses:
        kind = "standard" if train.strategy == Strategy.STANDARD else "certificate"
        tables.append(loss_table(f"{kind} training ({train.label})", losses))
    how = certify_how(program)
    square = train.options.patch if train is not None else None
    transfer = shape_transfer(spec, model, data.xt, data.yt, square, how)
    if transfer is not None:
        per_kind, table = transfer
        summary = attrs.evolve(summary, shape_transfer=per_kind)
        tables.append(table)
    plot = write_plot(
        ctx.artifact("accuracy.png"), tally.accuracies(), losses, spec.name, _loss_title(train)
    )
    return Summary(as_metrics(summary), tuple(tables), (plot,))


def _title(program: Program, n: int) -> str:
    t = program.spec.threat
    if isinstance(t, LpBall):
        radii = ", ".join(f"{r:g}" for r in t.radii)
        return f"{program.spec.name}: {t.norm.value} input-ball robustness, radius {radii} ({n} test images)"
    return f"{program.spec.name}: patch robustness ({n} test images)"


def _loss_title(train) -> str:
    if train is None:
        return ""
    return "standard training" if train.strategy == Strategy.STANDARD else "certificate training"
