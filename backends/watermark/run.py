"""Running a watermark plan: data, trigger set, embedding, certification, attacks, report."""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from threatlang.report import Summary

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
from .plan import WatermarkPlan
from .results import (
    ModelResult,
    attack_record,
    attack_table,
    certificate_table,
    embedding_table,
    plot_attacks,
    radius_record,
    summary_metrics,
)
from .triggers import TriggerConfig, make_trigger_set

Arrays = tuple[torch.Tensor, torch.Tensor]


def _load_data(plan: WatermarkPlan, ctx):
    if ctx.data is not None:
        return ctx.data
    from threatlang.data import load_dataset

    return load_dataset(plan.spec.data, seed=ctx.seed)


def _split_owner(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """The owner trains on ``fraction`` of the training split; the attacker holds the rest."""
    order = np.random.default_rng(seed).permutation(len(x))
    cut = max(1, int(round(fraction * len(x))))
    own, att = order[:cut], order[cut:] if cut < len(x) else order
    return (x[own], y[own]), (x[att], y[att])


def _fresh_model(plan: WatermarkPlan, ctx, shape, classes: int, seed: int) -> nn.Module:
    if ctx.model is not None:
        return copy.deepcopy(ctx.model)
    from .models import small_resnet

    with torch.random.fork_rng(devices=[]):  # module init uses the global RNG: confine it
        torch.manual_seed(seed)
        return small_resnet(tuple(shape), classes)


def _embed(plan, ctx, name, noise, classes, owner, trigger, test) -> nn.Module:
    """Train one watermarked model (or reload its checkpoint when resuming)."""
    seed = ctx.seed
    model = _fresh_model(plan, ctx, owner[0].shape[1:], classes, seed).to(ctx.device)
    checkpoint = ctx.artifact(f"{name}.pt")
    if ctx.resume and checkpoint.exists():
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
        return model.eval()
    t, o = plan.train, plan.train_options
    config = EmbedConfig(
        epochs=t.epochs, warmup_epochs=t.warmup, lr=t.lr, momentum=o.momentum,
        weight_decay=o.weight_decay, batch_size=t.batch_size,
        lr_milestones=() if o.lr_decay_epoch is None else (o.lr_decay_epoch,),
        trigger_batch_size=o.trigger_batch_size, sigma=plan.max_sigma, replay=o.replay,
        samples=o.noise_samples, noise=noise, step=o.step,
        strategy=NoiseStrategy.LOOP if ctx.device == "cpu" else NoiseStrategy.VMAP,
    )  # fmt: skip
    generator = torch.Generator(ctx.device).manual_seed(seed)
    epochs = iter(ctx.progress.track(range(t.epochs), description=f"embed {name}"))
    next(epochs, None)
    embed_watermark(
        model, owner, trigger, config, generator, test, on_epoch=lambda _: next(epochs, None)
    )
    torch.save(model.state_dict(), checkpoint)
    return model.eval()


def run_plan(plan: WatermarkPlan, ctx) -> Summary:
    """Embed (baseline and certified), certify per radius, attack, and summarise."""
    device = ctx.device
    data = _load_data(plan, ctx)
    o, s = plan.train_options, plan.smooth
    if o.target_label >= data.num_classes:
        raise ValueError(f"target_label {o.target_label} is not one of {data.num_classes} classes")
    owner_np, attacker_np = _split_owner(data.train.x, data.train.y, o.owner_fraction, ctx.seed)
    trig = make_trigger_set(
        TriggerConfig(o.trigger, o.trigger_size, o.target_label, o.text, seed=ctx.seed), *owner_np
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

    chunk = min(s.batch_size, 64)  # draws per vmap call: bounds the batched activations
    strategy = resolve_strategy(
        plan.smooth_options.noise_strategy, models["certified"],
        detached_params(models["certified"]), trigger[0], chunk,
    )  # fmt: skip
    results = {
        name: _certify(plan, model, name, trigger, test, chunk, strategy, ctx)
        for name, model in models.items()
    }
    pgd_rows = _parameter_pgd(plan, models["certified"], trigger, test, strategy, ctx)
    done = ctx.records.done_ids()
    for radius in plan.radii:
        record = radius_record(radius, results, pgd_rows.get(radius), plan.threshold)
        if record.id not in done:
            ctx.records.append(record)
    probe = SmoothedProbe(s.sigma, plan.smooth_options.probe_samples, chunk, strategy)
    histories = _removals(plan, models, attacker, trigger, test, probe, ctx)

    tables = [embedding_table(results), certificate_table(plan.radii, results, pgd_rows)]
    plots = []
    if histories:
        tables.append(attack_table(histories))
        plots.append(plot_attacks(histories, ctx.artifact("trigger_accuracy_attacks.png")))
    return Summary(
        metrics=summary_metrics(results, pgd_rows, histories, strategy), tables=tables, plots=plots
    )


def _certify(plan, model, name, trigger, test, chunk, strategy, ctx) -> ModelResult:
    """Algorithm 3 at every radius, plus the plain test and trigger accuracies."""
    s = plan.smooth
    generator = torch.Generator(ctx.device).manual_seed(ctx.seed + 1)
    params = detached_params(model)
    start = time.perf_counter()
    cert = certify_watermark(
        model, params, *trigger, s.sigma, s.samples, plan.radii, s.confidence, generator,
        chunk, strategy,
    )  # fmt: skip
    return ModelResult(
        name=name,
        test_accuracy=plain_accuracy(model, params, *test),
        trigger_accuracy=plain_accuracy(model, params, *trigger),
        certificate=cert,
        seconds=time.perf_counter() - start,
    )


def _parameter_pgd(plan, model, trigger, test, strategy, ctx) -> dict[float, PGDResult]:
    """The ε-adversary of Table 5.1 at every radius, against the certified watermark."""
    if plan.pgd is None:
        return {}
    s, pgd = plan.smooth, plan.pgd
    config = ParameterPGDConfig(
        steps=pgd.steps, step_size=pgd.step_size, noise_samples=pgd.options.noise_samples,
        sigma=s.sigma, strategy=strategy, restarts=pgd.restarts,
    )  # fmt: skip
    out = {}
    for radius in ctx.progress.track(plan.radii, description="parameter PGD"):
        out[radius] = pgd_at_radius(
            model, trigger, test, radius, s.sigma, s.samples, s.confidence, config,
            pgd.options.test_examples, torch.Generator(ctx.device).manual_seed(ctx.seed + 2),
        )  # fmt: skip
    return out


def _removals(plan, models, attacker, trigger, test, probe, ctx) -> dict:
    """Every removal attack against every watermark; one record each."""
    histories: dict[tuple[str, str], list[AttackEpoch]] = {}
    done = ctx.records.done_ids()
    jobs = [(r, n) for r in plan.removals for n in models]
    for step, name in ctx.progress.track(jobs, description="removal attacks"):
        config = RemovalConfig(
            kind=step.kind, lr=step.lr, epochs=step.epochs, batch_size=step.options.batch_size,
            regularization=step.options.regularization, reg_epochs=step.options.reg_epochs,
        )  # fmt: skip
        generator = torch.Generator(ctx.device).manual_seed(ctx.seed + 3)
        history = removal_attack(models[name], attacker, trigger, test, config, probe, generator)
        histories[(step.label, name)] = history
        record = attack_record(step.label, name, history, plan.threshold, max(plan.radii))
        if record.id not in done:
            ctx.records.append(record)
    return histories
