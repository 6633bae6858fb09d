"""Certificate-training cost per epoch against standard training, side by side (1 thread).

Trains each strategy for a few epochs on the same data and reports seconds per epoch and the
ratio to standard training. Run: python benchmarks/bench_ibp_train.py [--data digits|mnist5k]
"""

from __future__ import annotations

import argparse

import torch

from threatlang.backends.ibp.models import ARCHITECTURES
from threatlang.backends.ibp.patches import PatchThreat, square
from threatlang.backends.ibp.train import Strategy, TrainConfig, train


def load(name: str, limit: int):
    from threatlang.data import load_dataset
    from threatlang.ir.refs import DataRef

    d = load_dataset(DataRef(name, train_limit=limit))
    return torch.as_tensor(d.train.x), torch.as_tensor(d.train.y), d.input_shape


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits")
    ap.add_argument("--limit", type=int, default=1024)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--patch", type=int, default=2)
    ap.add_argument("--models", default="mlp255,small_cnn")
    args = ap.parse_args()
    torch.set_num_threads(1)
    x, y, shape = load(args.data, args.limit)
    threat = PatchThreat((square(args.patch),))
    runs = [
        (Strategy.STANDARD, 1, True),
        (Strategy.RANDOM, 1, True),
        (Strategy.RANDOM, 5, True),
        (Strategy.RANDOM, 10, True),
        (Strategy.ALL_PATCH, 1, True),
        (Strategy.ALL_PATCH, 1, False),
    ]
    print(
        f"data {args.data} ({len(y)} images {shape}), patch {args.patch}x{args.patch}, {args.epochs} epochs, batch 64"
    )
    for name in args.models.split(","):
        base = None
        for strategy, k, sparse in runs:
            torch.manual_seed(0)
            model = ARCHITECTURES[name](shape, 10)
            cfg = TrainConfig(
                strategy=strategy,
                k=k,
                epochs=args.epochs,
                lr=5e-4,
                batch_size=64,
                warmup_epochs=args.epochs,
            )
            logs = train(model, x, y, threat, cfg)
            per_epoch = min(log.seconds for log in logs)
            base = base or per_epoch
            label = strategy + (f"({k})" if strategy == Strategy.RANDOM else "")
            label += "" if sparse else " full-grad"
            print(
                f"{name:<10} {label:<20} {per_epoch:8.2f} s/epoch  x{per_epoch / base:6.1f} standard",
                flush=True,
            )


if __name__ == "__main__":
    main()
