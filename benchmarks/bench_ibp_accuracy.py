"""Clean / certified accuracy per certificate-training strategy (Table 2.3 in miniature).

Trains the MLP 255 of §2.7.1 with each strategy on the same data and certifies every test
image against all placements of a square patch. Run, e.g.:
  python benchmarks/bench_ibp_accuracy.py --data digits --patch 2 --epochs 20 --warmup 12
  python benchmarks/bench_ibp_accuracy.py --data mnist5k --patch 2 --epochs 10 --warmup 6
"""

from __future__ import annotations

import argparse
import time

import torch

from threatlang.backends.ibp.attack import AttackConfig, patch_attack
from threatlang.backends.ibp.certify import CertifyConfig, Outcome, certify_patches
from threatlang.backends.ibp.models import ARCHITECTURES
from threatlang.backends.ibp.patches import PatchThreat, square
from threatlang.backends.ibp.train import Strategy, TrainConfig, train

RUNS = {
    "standard": (Strategy.STANDARD, 1),
    "random1": (Strategy.RANDOM, 1),
    "random5": (Strategy.RANDOM, 5),
    "random10": (Strategy.RANDOM, 10),
    "all": (Strategy.ALL_PATCH, 1),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="digits")
    ap.add_argument("--model", default="mlp255")
    ap.add_argument("--patch", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=12)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--train-limit", type=int, default=None)
    ap.add_argument("--test-limit", type=int, default=400)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--attack-steps", type=int, default=0, help="PGD anywhere; 0 = no attack")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from threatlang.data import load_dataset
    from threatlang.ir.refs import DataRef

    d = load_dataset(DataRef(args.data, train_limit=args.train_limit, test_limit=args.test_limit))
    xs, ys = torch.as_tensor(d.train.x), torch.as_tensor(d.train.y)
    xt, yt = torch.as_tensor(d.test.x), torch.as_tensor(d.test.y)
    threat = PatchThreat((square(args.patch),))
    print(
        f"{args.data}: {len(ys)} train / {len(yt)} test {d.input_shape}, {args.model}, "
        f"patch {args.patch}x{args.patch} anywhere, {args.epochs} epochs (warm-up {args.warmup}), lr {args.lr}"
    )
    for name in args.runs.split(","):
        strategy, k = RUNS[name]
        torch.manual_seed(0)
        model = ARCHITECTURES[args.model](d.input_shape, d.num_classes)
        cfg = TrainConfig(
            strategy=strategy, k=k, epochs=args.epochs, lr=args.lr, warmup_epochs=args.warmup
        )
        start = time.perf_counter()
        train(model, xs, ys, threat, cfg)
        seconds = time.perf_counter() - start
        certs = certify_patches(model, xt, yt, threat, CertifyConfig())
        clean = sum(c.outcome is not Outcome.MISCLASSIFIED for c in certs) / len(certs)
        cert = sum(c.outcome is Outcome.CERTIFIED for c in certs) / len(certs)
        emp = ""
        if args.attack_steps:
            res = patch_attack(
                model, xt, yt, threat, AttackConfig(steps=args.attack_steps, restarts=2)
            )
            emp = f"  empirical {1 - float(res.success.float().mean()):6.1%}"
        print(
            f"{name:<10} clean {clean:6.1%}{emp}  certified {cert:6.1%}  train {seconds:7.1f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
