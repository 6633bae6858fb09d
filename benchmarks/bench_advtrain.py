"""Time per epoch of UPAT and PAT-k relative to standard training, measured in one run.

Chapter 6: PAT-k costs about k + 2 standard updates (k attack passes plus the doubled batch),
UPAT about 2 (the doubled batch only; the pattern's gradient is free). All methods train the same
ViT from the same weights on the same batches, with their epochs interleaved so that load from
other processes falls on all of them alike; the figure per method is its median epoch.

    python benchmarks/bench_advtrain.py --epochs 3 --max-k 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from threatlang.backends.advtrain import pyramid as pyr
from threatlang.backends.advtrain.config import MethodSpec
from threatlang.backends.advtrain.experiment import Settings, make_method
from threatlang.backends.advtrain.train import TrainConfig, Trainer
from threatlang.backends.advtrain.vit import vit_tiny
from threatlang.data import load_dataset
from threatlang.ir.refs import DataRef


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--max-k", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    data = load_dataset(DataRef("digits", resize=32), 0)
    x, y = torch.from_numpy(data.train.x), torch.from_numpy(data.train.y)
    settings = Settings(
        pyramid=pyr.PyramidConfig((16, 8, 1), (4.0, 2.0, 1.0)),
        upat_radius=8 / 255,
        pat_radius=6 / 255,
        upat_step_size=0.1 / 255,
        adv_weight=1.0,
        train=TrainConfig(epochs=args.epochs, batch_size=args.batch, lr=3e-3, augment=False),
    )
    names = ["standard", "upat", *(f"pat{k}" for k in range(1, args.max_k + 1))]
    base = vit_tiny((1, 32, 32), 10, torch.Generator().manual_seed(0))
    trainers = {}
    for name in names:
        model = vit_tiny((1, 32, 32), 10)
        model.load_state_dict(base.state_dict())
        method = make_method(MethodSpec.parse(name), settings, (1, 32, 32), 0, "cpu")
        trainers[name] = Trainer(
            model, method, x, y, settings.train, torch.Generator().manual_seed(1)
        )
    start = time.perf_counter()
    for _ in range(args.epochs):
        for t in trainers.values():
            t.epoch()
    wall = time.perf_counter() - start

    std = statistics.median(trainers["standard"].times)
    rows = []
    for name, t in trainers.items():
        fit = t.result()
        spe = statistics.median(fit.seconds_per_epoch)
        expected = 1.0 if name == "standard" else 2.0 if name == "upat" else int(name[3:]) + 2
        rows.append({
            "method": name, "seconds_per_epoch": spe, "ratio": spe / std,
            "passes_per_example": fit.passes_per_step, "calls_per_step": fit.calls_per_step,
            "chapter_ratio": expected,
        })  # fmt: skip
    print(f"{len(x)} training images 1x32x32, vit_tiny, batch {args.batch}, {args.epochs} "
          f"interleaved epochs, {args.threads} thread(s), {platform.processor() or 'cpu'}; "
          f"wall {wall:.0f} s")  # fmt: skip
    print(
        "| method | s/epoch (median) | time vs standard | passes/example | calls/step | chapter |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['seconds_per_epoch']:.2f} | {r['ratio']:.2f}x | "
              f"{r['passes_per_example']:g} | {r['calls_per_step']:g} | ~{r['chapter_ratio']}x |")  # fmt: skip
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
