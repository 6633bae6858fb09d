"""The stages of an ibp run: data, model, training, attack and certification.

Public functions shared by a single run (:mod:`.run`) and a side-by-side comparison
(:mod:`.compare`). Everything around the science comes from the run context: the data
(`ctx.splits`), seeded model building (`ctx.build_model`), named random streams
(`ctx.generator`), checkpoints that resume (`ctx.checkpoint`) and stage timings that survive a
resume (`ctx.timings`). Each stage reads its settings from the resolved plan steps only.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from threatlang.backends.base import Record, RunContext
from threatlang.backends.choices import Strategy
from threatlang.errors import UsageError
from threatlang.ir.threats import LpBall, Norm, PatchSet
from threatlang.runloop import run_items
from threatlang.runtime import stream_seed

from .attack import AttackConfig, AttackMethod, AttackResult, LocationSearch
from .ball_attack import BallAttackConfig, ball_attack
from .certify import CertifyConfig
from .chapter2 import attack as patch_attack_through_defences
from .chapter2 import scored_model
from .lpball import predict
from .modelref import build_model
from .outcomes import AttackRow
from .patches import PatchThreat
from .select import bound_config
from .steps import AttackStep, Program, TrainStep
from .strategies import strategy_loss
from .threat import patch_threat
from .train import Strategy as TrainStrategy
from .train import TrainConfig, train
from .work import GROUP, BallCertify, CertifyJob, PatchCertify, certify_group

#: the loss :func:`.train.train` computes itself; guided and pooled training replace it
#: through `loss_fn` (:func:`.strategies.strategy_loss`) and bound every placement they pick
_TRAIN_STRATEGY = {
    Strategy.STANDARD: TrainStrategy.STANDARD,
    Strategy.ALL_PATCH: TrainStrategy.ALL_PATCH,
    Strategy.RANDOM_PATCH: TrainStrategy.RANDOM,
    Strategy.GUIDED_PATCH: TrainStrategy.ALL_PATCH,
    Strategy.POOLED_PATCH: TrainStrategy.ALL_PATCH,
}


@attrs.frozen(eq=False)
class Tensors:
    """The run's data as tensors on the run's device."""

    xs: Tensor
    ys: Tensor
    xt: Tensor
    yt: Tensor
    num_classes: int
    input_shape: tuple[int, ...]


# ---------------------------------------------------------------------------- data, model
def load_data(program: Program, ctx: RunContext) -> Tensors:
    """The spec's or the caller's data, checked against what the program needs."""
    splits = ctx.splits(program.spec)
    if program.trains and len(splits.train) == 0:
        raise UsageError(
            f"spec '{program.spec.name}' trains the model but the data has no training split; "
            "pass data={'train': (x, y), 'test': (x, y)} to run()."
        )
    if len(splits.test) == 0:
        raise UsageError("the data has no test examples to certify; pass some (x, y) to run().")
    threat = program.spec.threat
    if isinstance(threat, PatchSet) and splits.test.x.ndim != 4:
        raise UsageError(
            f"a patch threat needs images (N, C, H, W); the test inputs of "
            f"{ctx.data_origin(program.spec)} have shape {splits.test.x.shape}: "
            "save them as (N, C, H, W), e.g. x.reshape(len(x), 1, H, W)."
        )
    if isinstance(threat, LpBall):
        _inside_domain(splits, program.domain)
    dev = torch.device(ctx.device)
    return Tensors(
        torch.as_tensor(splits.train.x, device=dev),
        torch.as_tensor(splits.train.y, device=dev),
        torch.as_tensor(splits.test.x, device=dev),
        torch.as_tensor(splits.test.y, device=dev),
        splits.num_classes,
        tuple(splits.test.x.shape[1:]),
    )


def _inside_domain(splits, domain: tuple[float, float]) -> None:
    low, high = domain
    for part in (splits.train, splits.test):
        if len(part) and (float(np.min(part.x)) < low or float(np.max(part.x)) > high):
            raise UsageError(
                f"inputs range over [{float(np.min(part.x)):.4g}, {float(np.max(part.x)):.4g}], "
                f"outside the input range [{low}, {high}] that l-inf balls are clipped to; "
                "declare it: input { shape (...) range [low, high] }."
            )


def make_model(program: Program, ctx: RunContext, data: Tensors) -> nn.Module:
    """The caller's module, else the spec's model (built under the run's `model` stream)."""
    spec = program.spec
    if ctx.model is None and spec.model is None:
        raise UsageError(
            f"spec '{spec.name}' names no model; add `model NAME`, or pass model= to run()."
        )
    model = ctx.build_model(
        "model",
        lambda: build_model(spec.model, data.input_shape, data.num_classes, ctx.allow_code),
    )
    _check_model(model, data)
    return model


def _check_model(model: nn.Module, data: Tensors) -> None:
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(data.xt[:1])
    except Exception as err:  # a user's module: say what does not fit, not where it broke
        raise UsageError(
            f"the model does not run on the data's inputs of shape {tuple(data.input_shape)} "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})."
        ) from None
    finally:
        model.train(was)
    if out.dim() != 2 or out.shape[1] < data.num_classes:
        raise UsageError(
            f"the model returns outputs of shape {tuple(out.shape[1:])}; a classifier of the "
            f"data's {data.num_classes} classes returns (N, K) logits with K >= "
            f"{data.num_classes}."
        )


# ---------------------------------------------------------------------------------- train
def train_stage(
    program: Program,
    step: TrainStep,
    model: nn.Module,
    data: Tensors,
    ctx: RunContext,
    prefix: str = "",
) -> list[float]:
    """Train `model` in place, or load its checkpoint on resume; the per-epoch losses."""
    name = f"{prefix}model.pt"
    ctx.artifact(name)  # its folder
    losses_path = ctx.artifact(f"{prefix}train_losses.json")

    def fit() -> list[float]:
        losses = _fit(program, step, model, data, ctx)
        losses_path.write_text(json.dumps(losses))
        return losses

    losses, loaded = ctx.checkpoint(name, model, fit, stage=f"{prefix}train")
    if loaded:
        ctx.console.print(f"[ibp] resumed trained weights from {ctx.out_dir / name}")
        return json.loads(losses_path.read_text()) if losses_path.exists() else []
    seconds = ctx.timings.get(f"{prefix}train")
    ctx.console.print(
        f"[ibp] trained {step.label} for {step.epochs} epochs in {seconds:.1f}s "
        f"(final loss {losses[-1]:.3f})"
    )
    return losses


def _fit(
    program: Program, step: TrainStep, model: nn.Module, data: Tensors, ctx: RunContext
) -> list[float]:
    threat = program.spec.threat
    o = step.options
    pt = patch_threat(threat, o.patch) if isinstance(threat, PatchSet) else None
    cfg = TrainConfig(
        strategy=_TRAIN_STRATEGY[step.strategy],
        **({"k": step.k} if step.k is not None else {}),
        epochs=step.epochs,
        lr=step.lr,
        batch_size=step.batch_size,
        warmup_epochs=step.warmup,
        halve_every=step.halve_every,
        chunk=o.chunk,
    )
    losses: list[float] = []
    bar = iter(
        ctx.progress.track(range(step.epochs), total=step.epochs, description=f"train {step.label}")
    )

    def on_epoch(log) -> None:
        losses.append(log.loss)
        next(bar, None)

    loss_fn = _seeded(
        ctx,
        "train/strategy",
        lambda: strategy_loss(
            step.strategy,
            step.k,
            pt,
            tuple(data.xs.shape[1:]),
            data.num_classes,
            pool=o.pool,
            unet_width=o.unet_width,
            unet_lr=o.unet_lr,
            temperature=o.temperature,
            device=data.xs.device,
        ),
    )
    gen = ctx.generator("train")
    model.train()
    train(model, data.xs, data.ys, pt, cfg, gen=gen, on_epoch=on_epoch, loss_fn=loss_fn)
    model.eval()
    return losses


def _seeded(ctx: RunContext, stream: str, build: Callable[[], Any]) -> Any:
    """`build()` with torch's global RNG (module initialisation) seeded from the stream and
    confined, as `ctx.build_model` does for the model (the guided U-net is built here)."""
    devices = [torch.device(ctx.device)] if torch.device(ctx.device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(stream_seed(ctx.seed, stream))
        return build()


# --------------------------------------------------------------------------------- attack
def attack_stage(
    program: Program,
    step: AttackStep,
    model: nn.Module,
    data: Tensors,
    ctx: RunContext,
    prefix: str = "",
) -> list[AttackRow]:
    """Attack every test image (batched; random starts from the `attack` stream, so a
    resumed run draws them as the first did); one row per image."""
    model.eval()
    gen = ctx.generator("attack")
    with ctx.timings.measure(f"{prefix}attack"):
        if isinstance(program.spec.threat, LpBall):
            return _ball_rows(program, step, model, data, gen)
        return _patch_rows(program, step, model, data, gen)


def _patch_rows(
    program: Program, step: AttackStep, model: nn.Module, data: Tensors, gen: torch.Generator
) -> list[AttackRow]:
    threat = patch_threat(program.spec.threat)
    cfg = AttackConfig(
        method=AttackMethod.PGD if step.random_start else AttackMethod.IFGSM,
        search=LocationSearch(step.search),
        steps=step.steps,
        step_size=step.step_size,
        restarts=step.restarts,
        max_locations=step.options.max_locations,
        chunk=step.options.chunk,
    )
    res = patch_attack_through_defences(
        program.spec, step.method, model, data.xt, data.yt, threat, cfg, gen
    )
    success = res.success.cpu()
    return [
        AttackRow(bool(success[j]), _patch_counterexample(res, j, threat) if success[j] else None)
        for j in range(len(success))
    ]


def _patch_counterexample(res: AttackResult, j: int, threat: PatchThreat) -> dict:
    s = int(res.shape_index[j])
    r, c = (int(v) for v in res.location[j])
    mask = np.array(threat.masks[s], dtype=bool)
    h, w = mask.shape
    content = res.adversarial[j][:, r : r + h, c : c + w].detach().cpu().numpy()
    return {
        "kind": "patch",
        "shape": s,
        "location": [r, c],
        "mask": mask.astype(int).tolist(),
        "content": content.tolist(),
    }


def _ball_rows(
    program: Program, step: AttackStep, model: nn.Module, data: Tensors, gen: torch.Generator
) -> list[AttackRow]:
    threat = program.spec.threat
    l2 = threat.norm is Norm.L2
    cfg = BallAttackConfig(
        eps=threat.eps,
        l2=l2,
        steps=step.steps,
        step_size=step.step_size,
        restarts=step.restarts,
        random_start=step.random_start,
        low=program.domain[0],
        high=program.domain[1],
        batch=step.options.chunk,
    )
    res = ball_attack(model, data.xt, data.yt, cfg, gen)
    delta = (res.adversarial - data.xt).flatten(1)
    dist = (delta.norm(dim=1) if l2 else delta.abs().amax(1)).cpu()
    success = res.success.cpu()
    adv = res.adversarial.detach().cpu()
    rows = []
    for j in range(len(success)):
        counter = None
        if success[j]:
            counter = {
                "kind": "input ball",
                "norm": threat.norm.value,
                "radius": threat.eps,
                "distance": float(dist[j]),
                "input": adv[j].tolist(),
            }
        rows.append(AttackRow(bool(success[j]), counter))
    return rows


# -------------------------------------------------------------------------------- certify
def certify_how(program: Program) -> PatchCertify | BallCertify | None:
    """The certificate the program's certify step asks for, as the work items' config."""
    step = program.certify
    if step is None:
        return None
    threat, o = program.spec.threat, step.options
    bcfg = bound_config(step.method, o.slope, o.intermediate)
    if isinstance(threat, LpBall):
        low, high = program.domain
        return BallCertify(threat.radii, threat.norm is Norm.L2, bcfg, o.engine, low, high)
    cfg = CertifyConfig(
        method=bcfg.method,
        chunk=o.chunk,
        batch_size=o.batch,
        local=o.patch_engine.flag(),
        slope=bcfg.lower_slope,
        engine=o.engine,
    )
    return PatchCertify(patch_threat(threat), cfg)


def certify_stage(
    program: Program,
    model: nn.Module,
    data: Tensors,
    attack: list[AttackRow] | None,
    ctx: RunContext,
    prefix: str = "",
) -> tuple[Record, ...]:
    """Certify (when the program does) and record every test image through the shared run
    loop (`--executor ray` spreads the groups over its workers; finished ones are skipped).
    The seconds of training and attack are shared out over the images still to do."""
    x, y = data.xt, data.yt
    n = len(y)
    todo = todo_images(ctx, n, prefix)
    shared = sum(ctx.timings.get(f"{prefix}{s}") or 0.0 for s in ("train", "attack"))
    shared /= max(1, len(todo))
    pred = predict(scored_model(program.spec, model), x).cpu()
    rows = attack if attack is not None else [None] * n
    job = CertifyJob(model, str(ctx.device), certify_how(program), prefix)
    items = []
    for start in range(0, n, GROUP):  # fixed groups, so a resumed run batches as before
        idx = range(start, min(n, start + GROUP))
        payload = [(i, x[i].cpu(), int(y[i]), int(pred[i]), rows[i], shared) for i in idx]
        items.append((tuple(f"{prefix}test-{i}" for i in idx), payload))
    fn = functools.partial(certify_group, job)
    step = program.certify
    if step is None:
        return run_items(ctx, items, fn, "score")
    if not todo:
        return run_items(ctx, items, fn, f"certify {step.method}")
    with ctx.timings.measure(f"{prefix}certify"):
        return run_items(ctx, items, fn, f"certify {step.method}")


def todo_images(ctx: RunContext, n: int, prefix: str = "") -> list[int]:
    """Test images without a record yet (all of them unless resuming)."""
    done = ctx.records.done_ids() if ctx.resume else frozenset()
    return [i for i in range(n) if f"{prefix}test-{i}" not in done]
