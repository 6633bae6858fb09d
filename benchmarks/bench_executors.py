"""Certification throughput: Ray with 2 workers against in-process, on this 2-core machine.

Work item = one image: all-patch interval bound propagation (every 2x2 location of a 28x28
input batched through a small CNN), the per-example unit the run loop hands an executor.
Both executors run the same items through `run_items`; records are checked identical. A no-op
work function on Ray gives the fixed overhead per item (scheduling, pickling, ordered gather).

    python benchmarks/bench_executors.py [--items 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from threatlang.backends.base import RunContext
from threatlang.executors import InProcessExecutor, RayExecutor
from threatlang.progress import ProgressFactory
from threatlang.records import RecordLog
from threatlang.report import Record, Status
from threatlang.runloop import run_items


def model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(1, 8, 4, 2, 1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 4, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(16 * 7 * 7, 100),
        nn.ReLU(),
        nn.Linear(100, 10),
    ).eval()


def interval(net: nn.Sequential, lo, hi):
    for layer in net:
        if isinstance(layer, nn.Conv2d | nn.Linear):
            mid, rad = (hi + lo) / 2, (hi - lo) / 2
            w = layer.weight.abs()
            mid = layer(mid)
            rad = (
                nn.functional.conv2d(rad, w, None, layer.stride, layer.padding)
                if isinstance(layer, nn.Conv2d)
                else rad @ w.T
            )
            lo, hi = mid - rad, mid + rad
        elif isinstance(layer, nn.ReLU):
            lo, hi = lo.clamp(min=0), hi.clamp(min=0)
        else:
            lo, hi = layer(lo), layer(hi)
    return lo, hi


def certify_patch(net: nn.Sequential, stride: int, payload) -> Record:
    """Placements of a 2x2 patch (values in [0, 1]) every `stride` pixels: worst margin bound."""
    item_id, x, y = payload
    start = time.perf_counter()
    spots = [(r, c) for r in range(0, 27, stride) for c in range(0, 27, stride)]
    with torch.no_grad():
        lo = x.expand(len(spots), 1, 28, 28).clone()
        hi = lo.clone()
        for k, (r, c) in enumerate(spots):
            lo[k, :, r : r + 2, c : c + 2] = 0.0
            hi[k, :, r : r + 2, c : c + 2] = 1.0
        low, high = interval(net, lo, hi)
        others = torch.cat([high[:, :y], high[:, y + 1 :]], dim=1).amax(dim=1)
        margin = float((low[:, y] - others).min())
    status = Status.CERTIFIED if margin > 0 else Status.UNKNOWN
    reason = None if margin > 0 else "interval bound inconclusive"
    return Record(
        item_id, status, {"margin_lower": margin}, time.perf_counter() - start, None, reason
    )


def noop(payload) -> Record:
    return Record(payload[0], Status.CERTIFIED, {})


def run(executor, items, fn, out: Path) -> tuple[float, tuple[Record, ...]]:
    ctx = RunContext(
        out_dir=out,
        records=RecordLog(out / "records.jsonl"),
        progress=ProgressFactory(None, quiet=True),
        console=None,
        executor=executor,
    )
    start = time.perf_counter()
    records = run_items(ctx, items, fn, "certify")
    return time.perf_counter() - start, records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)  # one core per worker on both sides: a like-for-like comparison
    gen = torch.Generator().manual_seed(0)
    items = [
        (f"x{i}", (f"x{i}", torch.rand(1, 28, 28, generator=gen), i % 10))
        for i in range(args.items)
    ]
    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    startup = time.perf_counter() - t0
    ray_ex = RayExecutor(workers=2)
    net = model()
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    print(f"items: {args.items}, repeats: {args.repeats} (medians)")
    print(f"ray local cluster start: {startup:.2f} s (once per run, not in the figures below)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run(ray_ex, items[:4], functools.partial(certify_patch, net, 1), tmp / "warm")
        over = statistics.median(
            run(ray_ex, items, noop, tmp / f"noop{k}")[0] for k in range(args.repeats)
        )
        print(f"ray overhead per item (no-op work): {1000 * over / len(items):.2f} ms")
        for stride, what in ((1, "729 placements"), (4, "49 placements")):
            fn = functools.partial(certify_patch, net, stride)
            here, there = compare(ray_ex, items, fn, tmp / f"s{stride}", args.repeats)
            n = len(items)
            print(
                f"{what}: in-process {1000 * here / n:.1f} ms/item ({n / here:.1f} items/s), "
                f"ray 2 workers {n / there:.1f} items/s, ratio ray/in-process {here / there:.2f}x"
            )
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    print("records identical on both executors: yes")
    ray.shutdown()


def compare(ray_ex, items, fn, tmp: Path, repeats: int) -> tuple[float, float]:
    """Median seconds in-process and on Ray, run alternately; records must be identical."""
    here_t, ray_t = [], []
    for k in range(repeats):
        t, a = run(InProcessExecutor(), items, fn, tmp / f"here{k}")
        here_t.append(t)
        t, b = run(ray_ex, items, fn, tmp / f"ray{k}")
        ray_t.append(t)
        key = [(r.id, r.status, dict(r.values)) for r in a]
        assert key == [(r.id, r.status, dict(r.values)) for r in b], "records differ"
    return statistics.median(here_t), statistics.median(ray_t)


if __name__ == "__main__":
    main()
