"""Input balls on the ibp backend: PGD against the certificates, ours against auto_LiRPA.

One plainly trained MLP on 8x8 digits; per l-inf / l2 radius: clean accuracy, accuracy under
PGD (the empirical upper bound), and certified accuracy by IBP / CROWN / alpha-CROWN in our
engine and in auto_LiRPA (when installed), with the seconds each bound took, all measured in
this one process on the same images.

    python benchmarks/bench_ibp_balls.py [--test-limit 300] [--width 1.0]
"""

from __future__ import annotations

import argparse
import time

import torch

from threatlang.backends.ibp.ball_attack import BallAttackConfig, ball_attack
from threatlang.backends.ibp.config import Engine, Intermediate, Slope
from threatlang.backends.ibp.lpball import certify_ball
from threatlang.backends.ibp.models import mlp255
from threatlang.backends.ibp.select import bound_config, select_engine
from threatlang.backends.ibp.train import Strategy, TrainConfig, train
from threatlang.bounds.lirpa import available
from threatlang.data import load_dataset
from threatlang.ir.refs import DataRef

RADII = {"linf": (0.01, 0.02, 0.05), "l2": (0.1, 0.3, 0.6)}
METHODS = ("ibp", "crown", "alpha_crown")  # as `certify METHOD` binds them (select.bound_config)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--test-limit", type=int, default=300)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=20)
    args = p.parse_args()
    torch.set_num_threads(1)
    d = load_dataset(DataRef("digits", test_limit=args.test_limit), seed=0)
    xs, ys = torch.as_tensor(d.train.x), torch.as_tensor(d.train.y)
    x, y = torch.as_tensor(d.test.x), torch.as_tensor(d.test.y)
    torch.manual_seed(0)
    model = mlp255((1, 8, 8), 10, args.width)
    cfg = TrainConfig(Strategy.STANDARD, epochs=args.epochs, lr=1e-3, warmup_epochs=args.epochs)
    train(model, xs, ys, None, cfg)
    model.eval()
    clean = float((model(x).argmax(1) == y).float().mean())
    engines = [Engine.OURS] + ([Engine.AUTO_LIRPA] if available() else [])
    nets = {e: select_engine(model, e, x) for e in engines}
    print(f"mlp255 width {args.width}, {len(y)} test digits, clean {clean:.1%}, 1 thread")
    head = ["norm", "radius", "PGD"] + [f"{m} {e.value}" for e in engines for m in METHODS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for norm, radii in RADII.items():
        for eps in radii:
            gen = torch.Generator().manual_seed(0)
            acfg = BallAttackConfig(eps, norm == "l2", steps=40, step_size=2.5 / 40, restarts=2)
            emp = 1 - float(ball_attack(model, x, y, acfg, gen).success.float().mean())
            cells = [norm, f"{eps:g}", f"{emp:.1%}"]
            for e in engines:
                for m in METHODS:
                    start = time.perf_counter()
                    bcfg = bound_config(m, Slope.ZERO, Intermediate.CROWN)
                    ok, _ = certify_ball(nets[e], x, y, (eps,), norm == "l2", bcfg)
                    seconds = time.perf_counter() - start
                    correct = model(x).argmax(1) == y
                    cert = float((ok[:, 0] & correct).float().mean())
                    cells.append(f"{cert:.1%} ({seconds:.2f}s)")
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
