"""Running a watermark plan: data, trigger set, embedding, certification, attacks, report.

The run scaffolding is the core's: data from `ctx.splits`, models from `ctx.build_model`,
embeddings trained or reloaded with `ctx.checkpoint` (their seconds survive a resume), and
every random stream a named `ctx.generator` on the device that draws. This module keeps the
science: Algorithm 2, the certificate, the attacks and the soundness check.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import attrs
import numpy as np
import torch
from torch import nn

from threatlang.errors import UsageError
from threatlang.report import Summary
from threatlang.runtime import stream_seed

from .attacks import (
    AttackEpoch,
    ParameterPGDConfig,
    PGDResult,
    RemovalConfig,
    SmoothedProbe,
    pgd_at_radius,
    removal_attack,
)
from .certify import certify_watermark
from .config import NoiseStrategy
from .embed import EmbedConfig, embed_watermark
from .param_noise import detached_params, plain_accuracy, resolve_strategy
from .results import (
    ModelResult,
    attack_record,
    attack_table,
    certificate_table,
    embedding_table,
    plot_attacks,
    radius_record,
    strongest_inside,
    summary_metrics,
)
from .triggers import TriggerConfig, make_trigger_set

if TYPE_CHECKING:  # annotations only: run imports no plan at run time (no cycle)
    from .plan import WatermarkPlan

Arrays = tuple[torch.Tensor, torch.Tensor]


def _split_owner(x: np.ndarray, y: np.ndarray, fraction: float, generator: torch.Generator):
    """The owner trains on ``fraction`` of the training split; the attacker holds the rest."""
    order = torch.randperm(len(x), generator=generator).numpy()
    cut = max(1, int(round(fraction * len(x))))
    own, att = order[:cut], order[cut:] if cut < len(x) else order
    return (x[own], y[own]), (x[att], y[att])


def _fresh_model(ctx, shape, classes: int) -> nn.Module:
    """The model to watermark: the caller's (a copy: both watermarks start from it) or the
    builtin small ResNet, seeded from the run's "model" stream (same start for both)."""
    from .models import small_resnet

    model = ctx.build_model("model", lambda: small_resnet(tuple(shape), classes))
    return copy.deepcopy(model) if ctx.model is not None else model


def _embed(plan, ctx, name, noise, classes, owner, trigger, test) -> nn.Module:
    """Train one watermarked model, or reload its checkpoint when resuming (the embedding's
    seconds, measured by the run that trained, survive in the run's timings)."""
    model = _fresh_model(ctx, owner[0].shape[1:], classes)
    t, o = plan.train, plan.train_options
    config = EmbedConfig(
        epochs=t.epochs, warmup_epochs=t.warmup, lr=t.lr, momentum=o.momentum,
        weight_decay=o.weight_decay, batch_size=t.batch_size,
        lr_milestones=() if o.lr_decay_epoch is None else (o.lr_decay_epoch,),
        trigger_batch_size=o.trigger_batch_size, sigma=plan.max_sigma, replay=o.replay,
        samples=o.noise_samples, noise=noise, step=o.step, regular_data=o.regular_data,
        strategy=NoiseStrategy.LOOP if ctx.device == "cpu" else NoiseStrategy.VMAP,
    )  # fmt: skip

    def train() -> None:
        epochs = iter(ctx.progress.track(range(t.epochs), description=f"embed {name}"))
        next(epochs, None)
        embed_watermark(
            model, owner, trigger, config, ctx.generator(f"embed-{name}"), test,
            on_epoch=lambda _: next(epochs, None),
        )  # fmt: skip

    ctx.checkpoint(f"{name}.pt", model, train, stage=f"embed_{name}")
    return model.eval()


def run_plan(plan: WatermarkPlan, ctx) -> Summary:
    """Embed (baseline and certified), certify per radius, attack, and summarise."""
    device = ctx.device
    data = ctx.splits(plan.spec)
    o, s = plan.train_options, plan.smooth
    if o.target_label >= data.num_classes:
        raise UsageError(
            f"target_label {o.target_label} is not one of the data's {data.num_classes} classes."
        )
    owner_np, attacker_np = _split_owner(
        data.train.x, data.train.y, o.owner_fraction, ctx.generator("owner-split", "cpu")
    )
    trigger_seed = stream_seed(ctx.seed, "trigger-set")
    trig = make_trigger_set(
        TriggerConfig(o.trigger, o.trigger_size, o.target_label, o.text, seed=trigger_seed),
        *owner_np,
    )

    def tensors(x, y) -> Arrays:
        return torch.from_numpy(np.ascontiguousarray(x)).to(device), torch.from_numpy(y).to(device)

    owner, attacker = tensors(*owner_np), tensors(*attacker_np)
    trigger, test = tensors(trig.x, trig.y), tensors(data.test.x, data.test.y)

    names = {"certified": True, **({"baseline": False} if o.baseline else {})}
    models = {
        n: _embed(plan, ctx, n, noise, data.num_classes, owner, trigger, test)
        for n, noise in names.items()
    }

    strategy = resolve_strategy(
        plan.smooth_options.noise_strategy, models["certified"],
        detached_params(models["certified"]), trigger[0], plan.chunk,
    )  # fmt: skip
    results = {
        name: _certify(plan, model, name, trigger, test, strategy, ctx)
        for name, model in models.items()
    }
    pgd_rows = _parameter_pgd(plan, models["certified"], trigger, test, strategy, ctx)
    probe = SmoothedProbe(
        s.sigma, plan.smooth_options.probe_samples, plan.chunk, strategy, s.confidence
    )
    histories = _removals(plan, models, attacker, trigger, test, probe, ctx)
    done = ctx.records.done_ids()
    records = []
    for radius in plan.radii:
        inside = strongest_inside(radius, pgd_rows.get(radius), histories)
        record = radius_record(radius, results, pgd_rows.get(radius), plan.threshold, inside)
        records.append(record)
        if record.id not in done:
            ctx.records.append(record)
    for (label, name), history in histories.items():
        record = attack_record(label, name, history, plan.threshold, max(plan.radii))
        if record.id not in done:
            ctx.records.append(record)

    tables = [embedding_table(results), certificate_table(plan.radii, results, pgd_rows)]
    plots = []
    if histories:
        tables.append(attack_table(histories))
        plots.append(plot_attacks(histories, ctx.artifact("trigger_accuracy_attacks.png")))
    embed_seconds = {name: ctx.timings.get(f"embed_{name}") for name in models}
    metrics = summary_metrics(results, pgd_rows, histories, strategy, records, embed_seconds)
    return Summary(metrics=metrics, tables=tables, plots=plots)


def _certify(plan, model, name, trigger, test, strategy, ctx) -> ModelResult:
    """Algorithm 3 at every radius, plus the plain test and trigger accuracies. Both models
    see the same noise stream (a paired comparison)."""
    s = plan.smooth
    params = detached_params(model)
    with ctx.timings.measure(f"certify_{name}"):
        cert = certify_watermark(
            model, params, *trigger, s.sigma, s.samples, plan.radii, s.confidence,
            ctx.generator("certify-noise"), plan.chunk, strategy,
        )  # fmt: skip
    return ModelResult(
        name=name,
        test_accuracy=plain_accuracy(model, params, *test),
        trigger_accuracy=plain_accuracy(model, params, *trigger),
        certificate=cert,
        seconds=ctx.timings.get(f"certify_{name}"),
    )


def _parameter_pgd(plan, model, trigger, test, strategy, ctx) -> dict[float, PGDResult]:
    """The ε-adversary of Table 5.1 at every radius, against the certified watermark."""
    if plan.pgd is None:
        return {}
    s, pgd = plan.smooth, plan.pgd
    config = ParameterPGDConfig(
        steps=pgd.steps, noise_samples=pgd.options.noise_samples,
        sigma=s.sigma, strategy=strategy, restarts=pgd.restarts,
    )  # fmt: skip
    out = {}
    radii = list(zip(plan.radii, pgd.step_sizes, strict=True))
    for radius, step in ctx.progress.track(radii, description="parameter PGD"):
        out[radius] = pgd_at_radius(
            model, trigger, test, radius, s.sigma, s.samples, s.confidence,
            attrs.evolve(config, step_size=step), pgd.options.test_examples,
            ctx.generator(f"parameter-pgd-{radius:g}"),
        )  # fmt: skip
    return out


def _removals(plan, models, attacker, trigger, test, probe, ctx) -> dict:
    """Every removal attack against every watermark (records are written by the caller)."""
    histories: dict[tuple[str, str], list[AttackEpoch]] = {}
    jobs = [(r, n) for r in plan.removals for n in models]
    for step, name in ctx.progress.track(jobs, description="removal attacks"):
        config = RemovalConfig(
            kind=step.kind, lr=step.lr, epochs=step.epochs, batch_size=step.options.batch_size,
            regularization=step.options.regularization, reg_epochs=step.options.reg_epochs,
        )  # fmt: skip
        generator = ctx.generator(f"removal-{step.label}-{name}")
        history = removal_attack(models[name], attacker, trigger, test, config, probe, generator)
        histories[(step.label, name)] = history
    return histories
