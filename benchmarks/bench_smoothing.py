"""Smoothing overhead, measured side by side in one run.

1. Regression certificate (median smoothing, §3.4-3.5) of a CNN: ``certify_regression``
   (noise generation, forwards, sort, order statistics) against the same number of raw batched
   forward passes of the base model on pre-drawn noisy inputs.  Target: overhead <= 10%.  The
   time of the Gaussian draws alone is measured too: it is the part that does not shrink with
   the model, so a tiny and a larger CNN are both reported.
2. Detection (Algorithm 1): the whole per-image certification (noise, detector forwards with NMS,
   encoding r, sort, order statistics, counts) against the detector forwards alone; the
   encoding + sorting share of detector time (on fixed samples).  Target: <= 5%.

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

from threatlang.backends.smoothing.config import DetectorTraining
from threatlang.backends.smoothing.detection.certify import certify_encoded, sample_detections
from threatlang.backends.smoothing.detection.encoding import (
    Binning,
    EncodingConfig,
    Sorting,
)
from threatlang.backends.smoothing.detection.models import TinyDetector
from threatlang.backends.smoothing.detection.scenes import make_scenes
from threatlang.backends.smoothing.detection.training import train_detector
from threatlang.backends.smoothing.regression import PercentileConfig, certify_regression
from threatlang.backends.smoothing.sampling import make_generator
from threatlang.stats import order_statistic_bounds

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


def regressor(device, width: int) -> nn.Module:
    torch.manual_seed(0)
    layers = [
        nn.Conv2d(3, width, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * width * 8 * 8, 4),
    ]
    return nn.Sequential(*layers).to(device).eval()


def bench_regression(device, n, batch, reps, width) -> dict:
    model = regressor(device, width)
    x = torch.rand(3, 32, 32, device=device)
    cfg = PercentileConfig(sigma=0.25, eps=0.36, n=n, confidence=0.99999, batch_size=batch)
    noisy = [x + 0.25 * torch.randn(batch, 3, 32, 32, device=device) for _ in range(n // batch)]

    @torch.no_grad()
    def raw():
        for b in noisy:
            model(b)

    def smooth():
        certify_regression(model, x, cfg, make_generator(0, device))

    def noise_only():
        gen = make_generator(0, device)
        for _ in range(n // batch):
            torch.randn((batch, 3, 32, 32), generator=gen, device=device)

    fns = {"raw_forward_s": raw, "certify_s": smooth, "noise_only_s": noise_only}
    times = _interleaved(fns, reps, device)
    r, s, z = times["raw_forward_s"], times["certify_s"], times["noise_only_s"]
    return {
        **times,
        "overhead": s / r - 1,
        "overhead_without_noise_draws": (s - z) / r - 1,
    }


def _interleaved(fns: dict, reps: int, device) -> dict:
    for f in fns.values():
        f()  # warm-up
    times = {k: [] for k in fns}
    for _ in range(reps):
        for k, f in fns.items():
            times[k].append(_timed(f, device))
    return {k: statistics.median(v) for k, v in times.items()}


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

    def encoding(encs):  # r, the sort along samples and the order statistics, on fixed samples
        return lambda: certify_encoded(samples, encs, THRESHOLDS, stats)

    def full(encs):
        def run():
            s = sample_detections(detector, x, 0.25, n, make_generator(0, device), batch)
            certify_encoded(s, encs, THRESHOLDS, stats)

        return run

    fns = {
        "raw_forward_s": raw,
        "encoding_headline_s": encoding((headline,)),
        "encoding_all8_s": encoding(every),
        "certify_headline_s": full((headline,)),
        "certify_all8_s": full(every),
    }
    out = _interleaved(fns, reps, device)
    r = out["raw_forward_s"]
    out["detections_per_sample"] = float(samples.valid.sum(1).float().mean())
    out["encoding_share_headline"] = out["encoding_headline_s"] / r
    out["encoding_share_all8"] = out["encoding_all8_s"] / r
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
    training = DetectorTraining(epochs=4, batch_size=64, lr=3e-3, noise_max=0.5, denoiser_epochs=1)
    torch.manual_seed(0)
    detector = train_detector(
        TinyDetector(), make_scenes(600, seed=0), training, make_generator(0, device)
    )
    result = {
        "device": str(device),
        "samples": args.samples,
        "batch": args.batch,
        "regression_tiny_cnn": bench_regression(device, args.samples, args.batch, args.reps, 16),
        "regression_small_cnn": bench_regression(device, args.samples, args.batch, args.reps, 64),
        "detection": bench_detection(device, args.samples, args.batch, args.reps, detector),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
