"""Run a compiled ``smooth classify`` plan: train (or take) a classifier, certify each test
example with Cohen et al.'s CERTIFY, report certified accuracy per radius."""

from __future__ import annotations

import time

import numpy as np
import torch

from threatlang.report import Record, Status, Summary, Table
from threatlang.runloop import run_items

from .classifier_model import NoisyTrainConfig, smoothed_cnn, train_noisy_classifier
from .classify import ABSTAIN, ClassifyConfig, certify
from .models_io import model_from_spec
from .sampling import make_generator

__all__ = ["build_model", "load_data", "run_classify"]


def load_data(plan, ctx):
    """The API's `DataSplits`, else the dataset the spec names."""
    if ctx.data is not None:
        return ctx.data
    from threatlang.data import load_dataset

    return load_dataset(plan.spec.data, seed=ctx.seed)


def build_model(plan, ctx, splits):
    """The API's model, else the spec's file/code, else the builtin CNN trained under noise."""
    if ctx.model is not None:
        return ctx.model.to(ctx.device).eval()
    loaded = model_from_spec(ctx, plan.spec.model, splits.input_shape, splits.num_classes)
    if loaded is not None:
        return loaded
    torch.manual_seed(ctx.seed)  # parameter init only
    model = smoothed_cnn(splits.input_shape, splits.num_classes)
    path = ctx.artifact("classifier.pt")
    if ctx.resume and path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.to(ctx.device).eval()
    t = plan.train
    cfg = NoisyTrainConfig(
        epochs=t.epochs if t else 20,
        lr=t.lr if t else 1e-3,
        batch_size=t.batch_size if t else 64,
        noise=plan.train_noise if plan.train_noise is not None else plan.smooth.sigma,
        seed=ctx.seed,
        device=ctx.device,
    )
    model = train_noisy_classifier(model, splits.train.x, splits.train.y, cfg)
    torch.save(model.state_dict(), path)
    return model


def _certify_one(payload) -> Record:
    index, model, x, y, cfg, seed, device, eps = payload
    start = time.perf_counter()
    pred = certify(model, x.to(device), cfg, make_generator(seed * 1_000_003 + index, device))
    values = {"label": y, "prediction": pred.label, "radius": pred.radius, "p_lower": pred.p_lower}
    seconds = time.perf_counter() - start
    if pred.label == y and pred.radius >= eps:
        return Record(f"example-{index}", Status.CERTIFIED, values, seconds)
    if pred.label == ABSTAIN:
        why = f"abstained: p_A lower bound {pred.p_lower:.3f} <= 1/2"
    elif pred.label != y:
        why = f"smoothed prediction {pred.label} differs from the label {y}"
    else:
        why = f"certified radius {pred.radius:.3f} < {eps:g}"
    return Record(f"example-{index}", Status.UNKNOWN, values, seconds, reason=why)


def run_classify(plan, ctx) -> Summary:
    splits = load_data(plan, ctx)
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
    records = run_items(ctx, items, _certify_one, "smoothed classifier")
    right = np.array([r.values["prediction"] == r.values["label"] for r in records])
    radius = np.array([r.values["radius"] for r in records])
    abstain = np.array([r.values["prediction"] == ABSTAIN for r in records])
    per_radius = {f"{r:g}": float((right & (radius >= r)).mean()) for r in plan.radii}
    metrics = {
        "clean_accuracy": clean,
        "smoothed_accuracy": float(right.mean()),
        "abstain_rate": float(abstain.mean()),
        "certified_accuracy": per_radius[f"{max(plan.radii):g}"],
        "certified_accuracy_at": per_radius,
        "mean_certified_radius": float(np.where(right, radius, 0.0).mean()),
        "sigma": s.sigma,
        "samples": s.samples,
        "confidence": s.confidence,
    }
    rows = [("base model (clean)", "-", clean), ("smoothed (clean)", "0", float(right.mean()))]
    rows += [("smoothed, certified", r, acc) for r, acc in per_radius.items()]
    return Summary(
        metrics, [Table("smoothed classifier (Cohen et al.)", ("", "radius", "accuracy"), rows)]
    )
