"""Table 2.3/2.5 in miniature: certificate-training strategies side by side on one run.

Trains the same architecture from the same initialisation with all-patch, random(k),
guided(k) and pooled (pool n, pool 2-2) certificate losses through the ibp training loop (same
schedule, same batches; guided/pooled via its ``loss_fn`` hook), then certifies every test
image against all placements with IBP. Reports clean accuracy, certified accuracy, training
time and time relative to all-patch. "all (dense)" is all-patch with gradients through every
placement, as the chapter trains it; "all patch" is the backend's, which back-propagates
through the worst placements only. One thread:

    python benchmarks/bench_ch2_strategies.py --data digits --arch mlp255 --lr 1e-3
    python benchmarks/bench_ch2_strategies.py --data mnist5k --resize 14 --train-limit 1000 \
        --test-limit 200 --arch mlp255 --lr 1e-3 --epochs 10 --warmup 5
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from threatlang.backends.ibp.certify import CertifyConfig, Outcome, certify_patches
from threatlang.backends.ibp.guided import GuidedConfig, GuidedPatchLoss
from threatlang.backends.ibp.margins import patch_margins
from threatlang.backends.ibp.models import ARCHITECTURES
from threatlang.backends.ibp.patches import PatchThreat, placements, square
from threatlang.backends.ibp.pooling import PoolConfig, PooledPatchLoss
from threatlang.backends.ibp.train import Strategy, TrainConfig, train
from threatlang.data import load_dataset
from threatlang.ir import DataRef


def _dense_all_patch(threat: PatchThreat):
    """All-patch loss with gradients through every placement, as the chapter trains it (the
    ibp backend's all-patch back-propagates through the worst placements only)."""

    def loss(net, x, y, scale, gen):
        worst = [
            patch_margins(net, x, y, m, o, threat.low, threat.high, scale=scale, local=False).amin(
                1
            )
            for m, o in placements(threat, tuple(x.shape[-2:]), x.device)
        ]
        return F.cross_entropy(-torch.stack(worst).amin(0), y)

    return loss


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="digits", choices=["digits", "mnist5k"])
    p.add_argument("--resize", type=int, default=None)
    p.add_argument("--train-limit", type=int, default=None)
    p.add_argument("--test-limit", type=int, default=300)
    p.add_argument("--patch", type=int, default=2)
    p.add_argument("--arch", default="small_cnn")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--only", default=None, help="comma-separated strategy labels")
    p.add_argument("--temperature", type=float, default=1.0, help="guided sampling softmax")
    args = p.parse_args()
    torch.set_num_threads(1)
    ref = DataRef(
        args.data, resize=args.resize, train_limit=args.train_limit, test_limit=args.test_limit
    )
    d = load_dataset(ref, seed=0)
    x, y = torch.tensor(d.train.x), torch.tensor(d.train.y)
    xt, yt = torch.tensor(d.test.x), torch.tensor(d.test.y)
    shape = tuple(x.shape[1:])
    threat = PatchThreat([square(args.patch)])
    strategies = {
        "all patch": lambda: (Strategy.ALL_PATCH, 1, None),
        "all (dense)": lambda: (Strategy.ALL_PATCH, 1, _dense_all_patch(threat)),
        "random(1)": lambda: (Strategy.RANDOM, 1, None),
        "random(5)": lambda: (Strategy.RANDOM, 5, None),
        "random(10)": lambda: (Strategy.RANDOM, 10, None),
        "guided(10)": lambda: (
            Strategy.ALL_PATCH,
            1,
            GuidedPatchLoss(
                threat, shape, d.num_classes, GuidedConfig(k=10, temperature=args.temperature)
            ),
        ),
        "pool 2": lambda: (Strategy.ALL_PATCH, 1, PooledPatchLoss(threat, PoolConfig.pool(2))),
        "pool 4": lambda: (Strategy.ALL_PATCH, 1, PooledPatchLoss(threat, PoolConfig.pool(4))),
        "pool 2-2": lambda: (Strategy.ALL_PATCH, 1, PooledPatchLoss(threat, PoolConfig.pool_2_2())),
    }
    if args.only:
        keep = args.only.split(",")
        strategies = {k: v for k, v in strategies.items() if k in keep}
    print(
        f"{args.data} {shape} train {len(y)} test {len(yt)}, {args.arch}, square({args.patch}), "
        f"{args.epochs} epochs (warm-up {args.warmup}), 1 thread"
    )
    print(f"{'strategy':<12}{'clean':>8}{'certified':>11}{'train s':>9}{'x all':>7}")
    base = None
    for label, make in strategies.items():
        torch.manual_seed(0)
        model = ARCHITECTURES[args.arch](shape, d.num_classes)
        start = time.perf_counter()
        strategy, k, loss_fn = make()
        cfg = TrainConfig(
            strategy,
            k,
            args.epochs,
            args.lr,
            args.batch,
            warmup_epochs=args.warmup,
            halve_every=max(1, args.epochs // 10),
        )
        try:
            train(model, x, y, threat, cfg, seed=0, loss_fn=loss_fn)
        except ValueError as err:  # e.g. pool 2-2 on a one-hidden-layer MLP
            print(f"{label:<12}  n/a: {err}")
            continue
        seconds = time.perf_counter() - start
        base = seconds if label == "all patch" else base
        certs = certify_patches(model, xt, yt, threat, CertifyConfig(batch_size=100))
        clean = sum(c.predicted == c.label for c in certs) / len(certs)
        cert = sum(c.outcome is Outcome.CERTIFIED for c in certs) / len(certs)
        rel = f"{seconds / base:6.2f}" if base else "     -"
        print(f"{label:<12}{clean:>8.1%}{cert:>11.1%}{seconds:>9.1f}{rel:>7}", flush=True)


if __name__ == "__main__":
    main()
