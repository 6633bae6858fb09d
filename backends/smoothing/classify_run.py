"""Run a compiled ``smooth classify`` plan: train (or take) a classifier, certify each test
example with Cohen et al.'s CERTIFY, report certified accuracy per radius."""

from __future__ import annotations

import time

import numpy as np
import torch

from threatlang.errors import UsageError
from threatlang.report import Record, Status, Summary, Table
from threatlang.runloop import run_items
from threatlang.runtime import generator

from .classifier_model import smoothed_cnn, train_noisy_classifier
from .classify import ABSTAIN, ClassifyConfig, certify
from .models_io import model_from_spec
from .summary import SmoothingSummary, as_metrics

__all__ = ["build_model", "run_classify"]


def build_model(plan, ctx, splits):
    """The API's model, else the spec's file/code, else the builtin CNN trained under noise
    (saved as a checkpoint; a resumed run loads it and keeps the first run's train seconds)."""
    if ctx.model is None:
        loaded = model_from_spec(ctx, plan.spec.model, splits.input_shape, splits.num_classes)
        if loaded is not None:
            return loaded
        if plan.training is None:  # `validate` refuses this spec before it runs
            raise UsageError(f"spec '{plan.spec.name}' has a builtin model and no `train`.")
    model = ctx.build_model("model", lambda: smoothed_cnn(splits.input_shape, splits.num_classes))
    if ctx.model is None:
        ctx.checkpoint(
            "classifier.pt",
            model,
            lambda: train_noisy_classifier(
                model, splits.train.x, splits.train.y, plan.training, ctx.generator("train")
            ),
        )
    return model.eval()


def _certify_one(payload) -> Record:
    index, model, x, y, cfg, seed, device, eps = payload
    start = time.perf_counter()
    gen = generator(seed, f"example-{index}", device)
    pred = certify(model, x.to(device), cfg, gen)
    values = {"label": y, "prediction": pred.label, "radius": pred.radius, "p_lower": pred.p_lower}
    seconds = time.perf_counter() - start
    if pred.label == y and pred.radius >= eps:
        return Record(f"example-{index}", Status.CERTIFIED, values, seconds)
    if pred.label == ABSTAIN:
        why = f"abstained: p_A lower bound {pred.p_lower:.3f} <= 1/2"
        if pred.nonfinite:
            why += f" ({pred.nonfinite} noisy inputs gave non-finite outputs, counted as no vote)"
    elif pred.label != y:
        why = f"smoothed prediction {pred.label} differs from the label {y}"
    else:
        why = f"certified radius {pred.radius:.3f} < {eps:g}"
    return Record(f"example-{index}", Status.UNKNOWN, values, seconds, reason=why)


def run_classify(plan, ctx) -> Summary:
    splits = ctx.splits(plan.spec)
    test = splits.test
    model = build_model(plan, ctx, splits)
    s = plan.smooth
    cfg = ClassifyConfig(
        sigma=s.sigma,
        num_classes=splits.num_classes,
        n0=plan.n0,
        n=s.samples,
        alpha=1.0 - s.confidence,
        batch_size=s.batch_size,
    )
    with torch.no_grad():
        logits = model(torch.from_numpy(test.x).to(ctx.device))
    clean = float((logits.argmax(1).cpu().numpy() == test.y).mean())
    items = [
        (f"example-{i}", (i, model, torch.from_numpy(test.x[i]), int(test.y[i]), cfg,
                          ctx.seed, ctx.device, max(plan.radii)))
        for i in range(len(test))
    ]  # fmt: skip
    with ctx.timings.measure("certify"):
        records = run_items(ctx, items, _certify_one, "smoothed classifier")
    right = np.array([r.values["prediction"] == r.values["label"] for r in records])
    radius = np.array([r.values["radius"] for r in records])
    abstain = np.array([r.values["prediction"] == ABSTAIN for r in records])
    per_radius = {f"{r:g}": float((right & (radius >= r)).mean()) for r in plan.radii}
    summary = SmoothingSummary(
        mode="classify",
        clean_accuracy=clean,
        smoothed_accuracy=float(right.mean()),
        abstain_rate=float(abstain.mean()),
        certified_accuracy=per_radius[f"{max(plan.radii):g}"],
        certified_accuracy_at=per_radius,
        mean_certified_radius=float(np.where(right, radius, 0.0).mean()),
        sigma=s.sigma,
        eps=max(plan.radii),
        samples=s.samples,
        confidence=s.confidence,
        train_seconds=ctx.timings.get("train"),
        certify_seconds=ctx.timings.get("certify"),
    )
    rows = [("base model (clean)", "-", clean), ("smoothed (clean)", "0", float(right.mean()))]
    rows += [("smoothed, certified", r, acc) for r, acc in per_radius.items()]
    return Summary(
        as_metrics(summary),
        [Table("smoothed classifier (Cohen et al.)", ("", "radius", "accuracy"), rows)],
    )
