"""Smoothing overhead, measured side by side in one run.

1. Regression certificate (median smoothing, §3.4-3.5) of a small CNN: ``certify_regression``
   (noise generation, forwards, sort, order statistics) against the same number of raw batched
   forward passes of the base model on pre-drawn noisy inputs.  Target: overhead <= 10%.
2. Detection (Algorithm 1): the whole per-image certification (noise, detector forwards with NMS,
   encoding r, sort, order statistics, counts) against the detector forwards alone; the
   encoding + sorting share of detector time.  Target: <= 5% for the headline encoding.

Repetitions are interleaved and the median is reported (the machine is shared and noisy).
Run: ``python benchmarks/bench_smoothing.py [--device cuda] [--reps 5]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from threatlang.backends.smoothing.detection.certify import certify_encoded, sample_detections
from threatlang.backends.smoothing.detection.encoding import (
    Binning,
    EncodingConfig,
    Sorting,
    encode,
)
from threatlang.backends.smoothing.detection.scenes import make_scenes
from threatlang.backends.smoothing.detection.training import TrainConfig, train_detector
from threatlang.backends.smoothing.percentile import order_statistic_bounds
from threatlang.backends.smoothing.regression import PercentileConfig, certify_regression
from threatlang.backends.smoothing.sampling import make_generator

THRESHOLDS = (0.1, 0.2, 0.4, 0.6, 0.8)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def regressor(device) -> nn.Module:
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(32 * 8 * 8, 4),
        )  # fmt: skip
        .to(device)
        .eval()
    )


def bench_regression(device, n, batch, reps) -> dict:
    model = regressor(device)
    x = torch.rand(3, 32, 32, device=device)
    cfg = PercentileConfig(sigma=0.25, eps=0.36, n=n, confidence=0.99999, batch_size=batch)
    noisy = [x + 0.25 * torch.randn(batch, 3, 32, 32, device=device) for _ in range(n // batch)]

    @torch.no_grad()
    def raw():
        for b in noisy:
            model(b)

    def smooth():
        certify_regression(model, x, cfg, make_generator(0, device))

    raw(), smooth()  # warm-up
    t_raw, t_smooth = [], []
    for _ in range(reps):
        t_raw.append(_timed(raw, device))
        t_smooth.append(_timed(smooth, device))
    r, s = statistics.median(t_raw), statistics.median(t_smooth)
    return {"raw_forward_s": r, "certify_s": s, "overhead": s / r - 1}


def bench_detection(device, n, batch, reps, detector) -> dict:
    x = torch.from_numpy(make_scenes(1, seed=99).images[0]).to(device)
    stats = order_statistic_bounds(n, 0.36 / 0.25, 0.99999)
    headline = EncodingConfig(Binning.LOCATION_LABEL, Sorting.LOCATION, 3, (32, 32), 3)
    every = tuple(
        EncodingConfig(b, s, 3, (32, 32), 3) for b in Binning for s in Sorting
    )  # 8 combinations
    noisy = [x + 0.25 * torch.randn(batch, 3, 32, 32, device=device) for _ in range(n // batch)]

    @torch.no_grad()
    def raw():
        for b in noisy:
            detector(b)

    samples = sample_detections(detector, x, 0.25, n, make_generator(0, device), batch)

    def encode_sort(encs):
        def run():
            for e in encs:
                for t in THRESHOLDS:
                    torch.sort(encode(samples, t, e), dim=0)

        return run

    def full(encs):
        def run():
            s = sample_detections(detector, x, 0.25, n, make_generator(0, device), batch)
            certify_encoded(s, encs, THRESHOLDS, stats)

        return run

    fns = {
        "raw_forward_s": raw,
        "encode_sort_headline_s": encode_sort((headline,)),
        "encode_sort_all8_s": encode_sort(every),
        "certify_headline_s": full((headline,)),
        "certify_all8_s": full(every),
    }
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            times[k].append(_timed(f, device))
    out = {k: statistics.median(v) for k, v in times.items()}
    r = out["raw_forward_s"]
    out["encoding_share_headline"] = out["encode_sort_headline_s"] / r
    out["encoding_share_all8"] = out["encode_sort_all8_s"] / r
    out["overhead_headline"] = out["certify_headline_s"] / r - 1
    out["overhead_all8"] = out["certify_all8_s"] / r - 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    # a briefly trained detector, so NMS and the encoding see realistic detection counts
    detector = train_detector(make_scenes(400, seed=0), TrainConfig(epochs=3, noise_max=0.35))
    detector = detector.to(device).eval()
    result = {
        "device": str(device),
        "samples": args.samples,
        "batch": args.batch,
        "regression": bench_regression(device, args.samples, args.batch, args.reps),
        "detection": bench_detection(device, args.samples, args.batch, args.reps, detector),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
