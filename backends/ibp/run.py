"""Running a compiled ibp plan: data, model, then train / attack / certify, then records."""

from __future__ import annotations

import functools
import time

import torch
from torch import Tensor

from threatlang.backends.base import Record, RunContext, Summary
from threatlang.errors import UsageError
from threatlang.ir.threats import LpBall, Norm, PatchSet
from threatlang.runloop import run_items

from . import chapter2
from .attack import AttackConfig, AttackMethod, LocationSearch
from .bounds import LowerSlope
from .certify import CertifyConfig
from .config import Intermediate, Slope
from .engine import BoundConfig, Method
from .lpball import predict
from .modelref import build_model
from .outcomes import summarize
from .plan import AttackStep, CertifyStep, IbpPlan, TrainStep
from .strategies import strategy_loss
from .threat import patch_threat
from .train import Strategy as TrainStrategy
from .train import TrainConfig, train
from .work import GROUP, BallCertify, CertifyJob, PatchCertify, attack_rows, certify_group
from threatlang.backends.choices import CertifyMethod, Strategy

_STRATEGY = {
    Strategy.STANDARD: TrainStrategy.STANDARD,
    Strategy.ALL_PATCH: TrainStrategy.ALL_PATCH,
    Strategy.RANDOM_PATCH: TrainStrategy.RANDOM,
}


def _data(plan: IbpPlan, ctx: RunContext):
    if ctx.data is not None:
        return ctx.data
    if plan.spec.data is None:
        raise UsageError("the spec names no data and none was passed to run()")
    from threatlang.data import load_dataset

    return load_dataset(plan.spec.data, seed=ctx.seed)


def _method(step: CertifyStep) -> BoundConfig:
    if step.action.method == CertifyMethod.IBP:
        return BoundConfig(Method.IBP)
    crown = Method.CROWN if step.options.intermediate is Intermediate.CROWN else Method.CROWN_IBP
    slope = LowerSlope.ADAPTIVE if step.options.slope is Slope.ADAPTIVE else LowerSlope.ZERO
    return BoundConfig(crown, slope)


def _train(
    plan: IbpPlan, step: TrainStep, model, xs: Tensor, ys: Tensor, ctx: RunContext
) -> list[float]:
    checkpoint = ctx.artifact("model.pt")
    if ctx.resume and checkpoint.exists():
        model.load_state_dict(torch.load(checkpoint, weights_only=True))
        ctx.console.print(f"[ibp] resumed trained weights from {checkpoint}")
        return []
    a, o = step.action, step.options
    threat = plan.spec.threat
    pt = patch_threat(threat, o.patch) if isinstance(threat, PatchSet) else None
    cfg = TrainConfig(
        strategy=_STRATEGY.get(a.strategy, TrainStrategy.ALL_PATCH),
        k=a.k or 1,
        epochs=a.epochs,
        lr=a.lr,
        batch_size=a.batch_size,
        warmup_epochs=a.warmup,
        halve_every=o.halve_every,
        chunk=o.chunk,
    )
    losses: list[float] = []
    bar = iter(
        ctx.progress.track(range(a.epochs), total=a.epochs, description=f"train {a.strategy}")
    )

    def on_epoch(log) -> None:
        losses.append(log.loss)
        next(bar, None)

    start = time.perf_counter()
    n_classes = int(model(xs[:1]).shape[1])
    loss_fn = strategy_loss(
        a.strategy,
        a.k,
        pt,
        tuple(xs.shape[1:]),
        n_classes,
        pool=o.pool,
        unet_width=o.unet_width,
        unet_lr=o.unet_lr,
        temperature=o.temperature,
        device=xs.device,
    )
    train(model, xs, ys, pt, cfg, seed=ctx.seed, on_epoch=on_epoch, loss_fn=loss_fn)
    ctx.console.print(
        f"[ibp] trained {a.strategy} for {a.epochs} epochs in {time.perf_counter() - start:.1f}s (final loss {losses[-1]:.3f})"
    )
    torch.save(model.state_dict(), checkpoint)
    return losses


def run_plan(plan: IbpPlan, ctx: RunContext) -> Summary:
    if sum(isinstance(s, TrainStep) for s in plan.steps) > 1 and ctx.model is None:
        from .compare import run_comparison  # several strategies side by side (Table 2.3)

        return run_comparison(plan, ctx)
    spec = plan.spec
    data = _data(plan, ctx)
    dev = torch.device(ctx.device)
    xs, ys = torch.as_tensor(data.train.x, device=dev), torch.as_tensor(data.train.y, device=dev)
    xt, yt = torch.as_tensor(data.test.x, device=dev), torch.as_tensor(data.test.y, device=dev)
    torch.manual_seed(ctx.seed)
    model = ctx.model
    if model is None:
        model = build_model(spec.model, data.input_shape, data.num_classes, ctx.allow_code)
    model = model.to(dev)
    timings: dict[str, float] = {}
    losses: list[float] = []
    done = ctx.records.done_ids() if ctx.resume else frozenset()
    todo = [i for i in range(len(yt)) if f"test-{i}" not in done]
    attack = None
    for step in plan.steps:
        start = time.perf_counter()
        if isinstance(step, TrainStep):
            losses = _train(plan, step, model, xs, ys, ctx)
            timings["train_seconds"] = time.perf_counter() - start
            continue
        model.eval()
        if todo and isinstance(step, AttackStep):  # on every image: its random starts are
            attack = _attack(plan, step, model, xt, yt, ctx)  # drawn batch-wide (resume)
            timings["attack_seconds"] = time.perf_counter() - start
    model.eval()
    certify = next((s for s in reversed(plan.steps) if isinstance(s, CertifyStep)), None)
    if todo:
        start = time.perf_counter()
        shared = sum(timings.values()) / len(todo)
        evaluate(plan, certify, model, xt, yt, todo, attack, shared, ctx)
        if certify is not None:
            timings["certify_seconds"] = time.perf_counter() - start
    summary = summarize(plan, ctx, timings, losses)
    square = next((s.options.patch for s in plan.steps if isinstance(s, TrainStep)), None)
    return chapter2.with_shape_transfer(spec, model, xt, yt, summary, square)


def evaluate(
    plan: IbpPlan,
    step: CertifyStep | None,
    model,
    x: Tensor,
    y: Tensor,
    todo: list[int],
    attack: dict | None,
    shared_seconds: float,
    ctx: RunContext,
    prefix: str = "",
) -> tuple[Record, ...]:
    """Certify (when `step` is given) and record each image of `todo` through the shared run
    loop, so `--executor ray` spreads the images over its workers; `attack` holds the batched
    attack's results for every image of `x`."""
    idx = torch.tensor(todo, dtype=torch.long, device=x.device)
    pred = predict(chapter2.scored_model(plan.spec, model), x[idx]).cpu()
    rows = attack_rows(attack) if attack is not None else [None] * len(x)
    job = CertifyJob(
        model,
        str(ctx.device),
        _certify_how(plan, step),
        attack["threat"] if attack is not None else None,
        prefix,
    )
    per_image = {
        i: (i, x[i].cpu(), int(y[i]), int(pred[j]), rows[i], shared_seconds)
        for j, i in enumerate(todo)
    }
    blocks: dict[int, list[int]] = {}
    for i in todo:  # fixed blocks of the test set, so a resumed run batches images as before
        blocks.setdefault(i // GROUP, []).append(i)
    items = [
        (tuple(f"{prefix}test-{i}" for i in block), [per_image[i] for i in block])
        for block in blocks.values()
    ]
    what = f"certify {step.action.method}" if step is not None else "score"
    return run_items(ctx, items, functools.partial(certify_group, job), what)


def _attack(plan: IbpPlan, step: AttackStep, model, x: Tensor, y: Tensor, ctx: RunContext) -> dict:
    a, o = step.action, step.options
    threat = patch_threat(plan.spec.threat)
    cfg = AttackConfig(
        method=AttackMethod.IFGSM if a.method == "bpda" else AttackMethod(a.method),
        search=LocationSearch(a.locations.value)
        if a.locations is not None
        else LocationSearch.ANYWHERE,
        steps=a.steps,
        step_size=a.step_size or 0.25,
        restarts=a.restarts,
        max_locations=o.max_locations,
        chunk=o.chunk,
    )
    res = chapter2.attack(plan.spec, a.method, model, x, y, threat, cfg, ctx.seed)
    return {
        "success": res.success.cpu(),
        "location": res.location.cpu(),
        "shape": res.shape_index.cpu(),
        "adv": res.adversarial.cpu(),
        "threat": threat,
    }


def _certify_how(plan: IbpPlan, step: CertifyStep | None) -> PatchCertify | BallCertify | None:
    if step is None:
        return None
    threat, o = plan.spec.threat, step.options
    bcfg = _method(step)
    if isinstance(threat, LpBall):
        return BallCertify(threat.radii, threat.norm is Norm.L2, bcfg)
    cfg = CertifyConfig(
        method=bcfg.method, chunk=o.chunk, batch_size=o.batch, local=o.engine.flag()
    )
    return PatchCertify(patch_threat(threat), cfg)
