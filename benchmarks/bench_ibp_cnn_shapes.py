"""Why the chapter's CNN shapes stall under certificate training on 8x8 digits (issue 22).

    OMP_NUM_THREADS=1 python benchmarks/bench_ibp_cnn_shapes.py --data digits
    OMP_NUM_THREADS=1 python benchmarks/bench_ibp_cnn_shapes.py --data digits --train 20

For each builtin (small_cnn at 8x8 is its small-image shape) at initialisation, with a 2x2
patch of full interval at every placement of 64 training images:

- the features entering the first fully connected layer, and the share of them that a patch
  reaches (its interval is not a point) on average over placements;
- the *relative interval width* after each ReLU: mean box radius over mean |box centre|, i.e.
  how loose the layer's bounds are against the signal they bound (0 = exact, > 1 = the bound
  is mostly slack);
- the norm of the certificate loss's gradient (all weights) at patch scale 0 (the clean loss),
  0.1 and 1: the warm-up's first steps are dominated by the bound once its gradient is
  hundreds of times the clean one.

With ``--train E``: all-patch certificate training for E epochs (the quickstart's schedule
shape: warm-up over 60%, lr 2e-3), then clean / certified accuracy on 300 test images and the
share of dead ReLUs (never active on 256 training images: a network that collapsed to a
constant output has all of one layer's dead).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from threatlang.backends.ibp.certify import CertifyConfig, Outcome, certify_patches
from threatlang.backends.ibp.models import ARCHITECTURES
from threatlang.backends.ibp.patches import PatchThreat, dense_box, placements, square
from threatlang.backends.ibp.train import Strategy, TrainConfig, certificate_loss, train
from threatlang.bounds.affine import BoundLinear
from threatlang.bounds.engine import BoundedNetwork
from threatlang.bounds.nonlinear import BoundReLU
from threatlang.data import load_dataset
from threatlang.ir import DataRef

MODELS = ("chapter_small_cnn", "small_cnn", "large_cnn", "mlp255")


def interval_growth(
    net: BoundedNetwork, x: torch.Tensor, threat: PatchThreat
) -> tuple[float, list[float]]:
    """(share of the first Linear's inputs that a patch reaches, and after each ReLU the mean
    radius over the mean |centre|), over every placement of a full patch. After a ReLU the
    ratio is (hi - lo) / (hi + lo) averaged: 0 = exact, 1 = every lower bound is 0."""
    mask, offs = next(iter(placements(threat, tuple(x.shape[-2:]), x.device)))
    box = dense_box(x, mask, offs, threat.low, threat.high, 1.0)
    reached, widths = None, []
    with torch.no_grad():
        for op in net.body:
            if reached is None and isinstance(op, BoundLinear):
                reached = float((box.radius.flatten(1) > 1e-7).float().mean())
            box = op.interval(box, None)
            if isinstance(op, BoundReLU):
                widths.append(float(box.radius.mean() / box.centre.abs().mean().clamp_min(1e-12)))
    return reached, widths


def grad_norm(model: nn.Module, net: BoundedNetwork, x, y, threat, scale: float) -> float:
    model.zero_grad(set_to_none=True)
    cfg = TrainConfig(Strategy.ALL_PATCH)
    certificate_loss(net, x, y, threat, cfg, scale, torch.Generator()).backward()
    norms = [p.grad.norm() for p in model.parameters() if p.grad is not None]
    model.zero_grad(set_to_none=True)
    return float(torch.stack(norms).norm())


def dead_share(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Per ReLU layer: share of units not active on any of the images."""
    shares, h = [], x
    with torch.no_grad():
        for layer in model:
            h = layer(h)
            if isinstance(layer, nn.ReLU):
                shares.append(float(((h > 0).flatten(1).sum(0) == 0).float().mean()))
    return shares


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default="digits", choices=["digits", "mnist5k"])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--train", type=int, default=0, help="epochs of all-patch training (0: none)")
    p.add_argument("--lr", type=float, default=2e-3)
    args = p.parse_args()
    torch.set_num_threads(1)
    d = load_dataset(DataRef(args.data, test_limit=300), seed=0)
    x, y = torch.tensor(d.train.x), torch.tensor(d.train.y)
    xt, yt = torch.tensor(d.test.x), torch.tensor(d.test.y)
    shape, threat = tuple(x.shape[1:]), PatchThreat([square(2)])
    print(f"{args.data} {shape}, 2x2 patch; at initialisation (seed 0), 64 images")
    print(
        "| model | FC input | FC inputs a patch reaches | rel. width after each ReLU "
        "| grad norm, scale 0 / 0.1 / 1 |"
    )
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = ARCHITECTURES[name](shape, d.num_classes)
        net = BoundedNetwork(model, x[:2])
        fc = next(m for m in model.modules() if isinstance(m, nn.Linear)).in_features
        reached, widths = interval_growth(net, x[:64], threat)
        widths = " → ".join(f"{w:.2f}" for w in widths)
        g = [grad_norm(model, net, x[:64], y[:64], threat, s) for s in (0.0, 0.1, 1.0)]
        grads = f"{g[0]:.3f} / {g[1]:.2f} / {g[2]:.1f}"
        print(f"| {name} | {fc} | {reached:.0%} | {widths} | {grads} |", flush=True)
    if not args.train:
        return
    e = args.train
    cfg = TrainConfig(Strategy.ALL_PATCH, 1, e, args.lr, 64, round(0.6 * e), max(1, e // 10))
    print(f"\nall-patch, {e} epochs (warm-up {cfg.warmup_epochs}), lr {args.lr}, 1 thread")
    print("| model | clean | certified | dead ReLUs per layer | train CPU s |")
    print("|---|---|---|---|---|")
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = ARCHITECTURES[name](shape, d.num_classes)
        start = time.process_time()
        train(model, x, y, threat, cfg, seed=0)
        cpu = time.process_time() - start
        certs = certify_patches(model, xt, yt, threat, CertifyConfig(batch_size=100))
        clean = sum(c.predicted == c.label for c in certs) / len(certs)
        cert = sum(c.outcome is Outcome.CERTIFIED for c in certs) / len(certs)
        dead = ", ".join(f"{s:.0%}" for s in dead_share(model, x[:256]))
        print(f"| {name} | {clean:.1%} | {cert:.1%} | {dead} | {cpu:.0f} |", flush=True)


if __name__ == "__main__":
    main()
