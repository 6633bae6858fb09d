"""Run a compiled regression plan: certified bounds on every output coordinate (§3.4).

Percentile smoothing (Lemma 3.1 + §3.5's order statistics) and, for bounded outputs, mean
smoothing (Corollary 3.0.1 with a Hoeffding interval) side by side on the same examples — the
comparison of §3.4: the median's bounds follow the local spread of ``f(x + G)``, the mean's the
global range ``[l, u]``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from threatlang.report import Record, Status, Summary, Table
from threatlang.runloop import run_items
from threatlang.runtime import generator
from threatlang.stats import InsufficientSamples

from .classify_run import build_model
from .config import Outputs
from .mean import MeanConfig, certify_mean
from .regression import PercentileConfig, certify_regression
from .summary import SmoothingSummary, as_metrics

__all__ = ["run_regression"]


class _Head(torch.nn.Module):
    """The regression function f: the model's outputs, or their softmax."""

    def __init__(self, model: torch.nn.Module, softmax: bool) -> None:
        super().__init__()
        self.model, self.softmax = model, softmax

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return out.softmax(dim=1) if self.softmax else out


def _nonfinite(*tensors: torch.Tensor) -> bool:
    return not all(bool(torch.isfinite(t).all()) for t in tensors)


_NONFINITE = "the model's outputs on the noisy inputs are not all finite (NaN or infinite)"


def _certify_one(payload) -> Record:
    index, f, x, y, pcfg, mcfg, seed, device = payload
    start = time.perf_counter()
    gen = generator(seed, f"example-{index}", device)
    cert = certify_regression(f, x.to(device), pcfg, gen)
    if isinstance(cert, InsufficientSamples):
        return Record(
            f"example-{index}", Status.UNKNOWN, {"min_samples": cert.min_n}, reason=cert.reason
        )
    values = {
        "label": y,
        "prediction": cert.prediction,
        "lower": cert.lower,
        "upper": cert.upper,
    }
    bounds = [cert.prediction, cert.lower, cert.upper]
    if mcfg is not None:
        mean = certify_mean(f, x.to(device), mcfg, gen)
        values.update(mean_prediction=mean.prediction, mean_lower=mean.lower, mean_upper=mean.upper)
        bounds += [mean.prediction, mean.lower, mean.upper]
    seconds = time.perf_counter() - start
    if _nonfinite(*bounds):  # sound or silent: a NaN sample sorts anywhere
        return Record(f"example-{index}", Status.UNKNOWN, {"label": y}, seconds, reason=_NONFINITE)
    return Record(f"example-{index}", Status.CERTIFIED, values, seconds)


def _widths(records, lo_key: str, hi_key: str) -> tuple[float, float]:
    """Mean interval width, and the share of examples whose true output's lower bound beats
    every other output's upper bound (the regression certificate implies the label)."""
    widths, wins = [], []
    for r in records:
        lo, hi = np.asarray(r.values[lo_key], float), np.asarray(r.values[hi_key], float)
        widths.append(float(np.mean(hi - lo)))
        y = r.values["label"]
        wins.append(bool(lo[y] > np.delete(hi, y).max()) if lo.size > 1 else False)
    return float(np.mean(widths)), float(np.mean(wins))


def run_regression(plan, ctx) -> Summary:
    splits = ctx.splits(plan.spec)
    test = splits.test
    s, o = plan.smooth, plan.regression_options
    pcfg = PercentileConfig(
        sigma=s.sigma, eps=plan.eps, n=s.samples, confidence=s.confidence, p=s.percentile,
        batch_size=s.batch_size,
    )  # fmt: skip
    stats = pcfg.order_statistics()
    if not plan.mean_only and isinstance(stats, InsufficientSamples):  # before any compute
        for i in range(len(test)):
            values = {"min_samples": stats.min_n}
            ctx.records.append(Record(f"example-{i}", Status.UNKNOWN, values, reason=stats.reason))
        summary = SmoothingSummary(
            examples=len(test), unknown=len(test), reason=stats.reason, sigma=s.sigma,
            eps=plan.eps, samples=s.samples, confidence=s.confidence, min_samples=stats.min_n,
        )  # fmt: skip
        return Summary(as_metrics(summary))
    model = build_model(plan, ctx, splits)
    f = _Head(model, o.outputs is Outputs.SOFTMAX)
    mcfg = (
        MeanConfig(sigma=s.sigma, eps=plan.eps, low=o.low, high=o.high, n=s.samples,
                   confidence=s.confidence, batch_size=s.batch_size)
        if plan.use_mean else None
    )  # fmt: skip
    if plan.mean_only:
        pcfg = None
    items = [
        (f"example-{i}", (i, f, torch.from_numpy(test.x[i]), int(test.y[i]), pcfg, mcfg,
                          ctx.seed, ctx.device))
        for i in range(len(test))
    ]  # fmt: skip
    with ctx.timings.measure("certify"):
        records = run_items(ctx, items, _certify_one if pcfg else _mean_only, "smoothing outputs")
    done = [r for r in records if r.status is Status.CERTIFIED]
    metrics = {
        "examples": len(records),
        "unknown": len(records) - len(done),
        "soundness_violations": sum(map(_outside, done)),
        "sigma": s.sigma,
        "eps": plan.eps,
        "samples": s.samples,
        "confidence": s.confidence,
        "train_seconds": ctx.timings.get("train"),
        "certify_seconds": ctx.timings.get("certify"),
    }
    rows = []
    if done and pcfg is not None:
        w, c = _widths(done, "lower", "upper")
        metrics.update(percentile_mean_width=w, percentile_label_certified=c)
        rows.append((f"percentile p={s.percentile:g} (Lemma 3.1)", w, c))
    if done and mcfg is not None:
        w, c = _widths(done, "mean_lower", "mean_upper")
        metrics.update(mean_mean_width=w, mean_label_certified=c)
        rows.append(("mean (Corollary 3.0.1)", w, c))
    if not done:
        metrics["reason"] = records[0].reason if records else "no examples"
    title = f"certified output bounds, ||delta|| < {plan.eps:g}"
    table = Table(title, ("smoothing", "mean width", "label implied"), rows)
    return Summary(as_metrics(SmoothingSummary(mode="regression", **metrics)), [table])


def _outside(record: Record) -> bool:
    """The centre is in the ball (delta = 0): a smoothed prediction outside its own certified
    interval falsifies the certificate (percentile and mean bounds alike)."""
    v = record.values
    pairs = [("prediction", "lower", "upper"), ("mean_prediction", "mean_lower", "mean_upper")]
    for p, lo, hi in pairs:
        if p in v:
            x, a, b = (np.asarray(v[k], float) for k in (p, lo, hi))
            if np.any(x < a) or np.any(x > b):
                return True
    return False


def _mean_only(payload) -> Record:
    index, f, x, y, _, mcfg, seed, device = payload
    start = time.perf_counter()
    mean = certify_mean(f, x.to(device), mcfg, generator(seed, f"example-{index}", device))
    values = {"label": y, "mean_prediction": mean.prediction, "mean_lower": mean.lower,
              "mean_upper": mean.upper}  # fmt: skip
    seconds = time.perf_counter() - start
    if _nonfinite(mean.prediction, mean.lower, mean.upper):
        return Record(f"example-{index}", Status.UNKNOWN, {"label": y}, seconds, reason=_NONFINITE)
    return Record(f"example-{index}", Status.CERTIFIED, values, seconds)
