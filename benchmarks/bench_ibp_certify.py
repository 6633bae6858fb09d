"""All-patch certification throughput, measured side by side in one process (1 thread).

For each builtin architecture on 28x28 inputs and square patches, times the worst-case margin
bound over every placement computed
  - per location: a Python loop calling the same engine once per placement (dense boxes),
  - vectorised dense: all placements of a chunk as one batch of full-image boxes,
  - vectorised local: the receptive-field engine (clean pass once, patch-local correction),
  - plain forwards: the model on the same number of patched images (no bounds),
and prints the ratios. Run: python benchmarks/bench_ibp_certify.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

from threatlang.backends.ibp.margins import patch_margins
from threatlang.backends.ibp.models import ARCHITECTURES
from threatlang.backends.ibp.patches import (
    Locations,
    apply_patch,
    chunks,
    mask_tensor,
    offsets,
    square,
)
from threatlang.bounds.engine import BoundedNetwork


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def row(name, model, x, n: int, args, repeats: int, gen: torch.Generator) -> None:
    size, b = x.shape[-1], x.shape[0]
    net = BoundedNetwork(model, x)
    y = model(x).argmax(1)
    mask = mask_tensor(square(n))
    offs = offsets(Locations(), (size, size), (n, n))
    loop_offs = offs[: 64 if args.quick else 128]  # the loop is timed on a subset, scaled

    def loop() -> None:
        for o in loop_offs:
            patch_margins(net, x, y, mask, o[None], 0.0, 1.0, local=False)

    def vec(local: bool):
        return lambda: [
            patch_margins(net, x, y, mask, c, 0.0, 1.0, local=local)
            for c in chunks(offs, args.chunk)
        ]

    content = torch.rand(b, args.chunk, 1, n, n, generator=gen)

    def plain() -> None:
        for c in chunks(offs, args.chunk):
            imgs = apply_patch(x, mask, c, content[:, : c.shape[0]])
            model(imgs.reshape(-1, 1, size, size))

    with torch.no_grad():
        t_loop = best_of(loop, 1) * offs.shape[0] / loop_offs.shape[0]
        t_dense, t_local, t_plain = (best_of(f, repeats) for f in (vec(False), vec(True), plain))
    print(
        f"{name:<10} {n:>3}x{n} {offs.shape[0]:>5} {t_loop:8.2f} {t_dense:8.2f} {t_local:8.2f} {t_plain:8.2f}"
        f" {t_loop / t_local:10.1f} {t_dense / t_plain:11.2f} {t_local / t_plain:11.2f}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--models", default="mlp255,small_cnn,large_cnn")
    ap.add_argument("--chunk", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    size, b = 28, args.batch
    x = torch.rand(b, 1, size, size, generator=gen)
    repeats = 1 if args.quick else 3
    print(
        f"{'model':<10} {'patch':>5} {'locs':>5} {'loop':>8} {'dense':>8} {'local':>8} {'plain':>8}"
        f" {'loop/local':>10} {'dense/plain':>11} {'local/plain':>11}"
    )
    for name in args.models.split(","):
        model = ARCHITECTURES[name]((1, size, size), 10).eval()
        for n in (2, 5):
            row(name, model, x, n, args, repeats, gen)
    print(f"(seconds for {b} images x all placements; chunk {args.chunk}; torch threads 1)")


if __name__ == "__main__":
    main()
