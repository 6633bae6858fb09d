"""Several ``train`` actions in one spec: a side-by-side comparison (Tables 2.3 and 2.5).

Each train action trains a fresh model (the same initial weights: the run's `model` stream,
or a copy of the module handed to `run()`) on the same batches, its checkpoint, losses and
stage timings under its own name, then the spec's attack/certify steps run on it. Records are
``<n>-<strategy>/test-<i>``; the summary has one row per strategy: clean, empirical and
certified accuracy and training time, plus the time relative to the first strategy.
"""

from __future__ import annotations

import copy

from threatlang.backends.base import RunContext, Summary, Table

from .metrics import IbpSummary, as_metrics
from .outcomes import Tally, strategy_metrics
from .stages import attack_stage, certify_stage, load_data, make_model, todo_images, train_stage
from .steps import Program


def run_comparison(program: Program, ctx: RunContext) -> Summary:
    spec = program.spec
    data = load_data(program, ctx)
    n = len(data.yt)
    rows, strategies = [], {}
    first = None
    violations = 0
    for i, step in enumerate(program.trains):
        prefix = f"{i + 1}-{step.label}/"
        model = make_model(program, ctx, data)
        if ctx.model is not None:  # every strategy starts from the caller's weights
            model = copy.deepcopy(model)
        train_stage(program, step, model, data, ctx, prefix)
        seconds = ctx.timings.get(f"{prefix}train")
        attack = None
        if program.attack is not None and todo_images(ctx, n, prefix):
            attack = attack_stage(program, program.attack, model, data, ctx, prefix)
        records = certify_stage(program, model, data, attack, ctx, prefix)
        tally = Tally.of(records, program.attack is not None, program.certify is not None)
        violations += tally.violations
        strategies[step.label] = strategy_metrics(tally, seconds)
        first = seconds if first is None else first
        rows.append(
            (
                step.label,
                f"{tally.clean:.1%}",
                "-" if tally.empirical is None else f"{tally.empirical:.1%}",
                "-" if tally.certified is None else f"{tally.certified:.1%}",
                "-" if seconds is None else f"{seconds:.1f}",
                f"{seconds / first:.2f}" if seconds is not None and first else "-",
            )
        )
    table = Table(
        f"{spec.name}: training strategies ({n} test images; Table 2.3)",
        ("strategy", "clean", "empirical", "certified", "train s", "x first"),
        rows,
    )
    summary = IbpSummary(examples=n, soundness_violations=violations, strategies=strategies)
    return Summary(as_metrics(summary), (table,))
