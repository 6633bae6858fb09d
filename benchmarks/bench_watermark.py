"""Certification cost: batched parameter noise vs the reference perturb-evaluate-restore loop.

Certifying a watermark (Algorithm 3) evaluates the trigger set at n noisy copies θ + G_i. The
reference code does it one draw at a time, adding noise to ``param.data`` in place and
subtracting it again. threatlang draws the noise in chunks and calls the model functionally
(``torch.func.functional_call``), mapping a chunk through ``torch.func.vmap`` where that pays.
Everything is timed side by side in one process (min of ``--repeats`` interleaved rounds):

* ``reference``: the in-place loop (on a private copy of the model),
* ``loop``: functional call per draw, noise sampled per chunk,
* ``vmap``: one vmapped functional call per chunk,
* ``plain``: the same number n of plain trigger-set evaluations (no noise at all) — the floor.

Also times one noisy trigger step of Algorithm 2 (the gradient averaged over replay·samples
draws): vmap vs loop. Run: ``python benchmarks/bench_watermark.py [--n 500] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch
from torch import nn

from threatlang.backends.watermark.config import NoiseStrategy
from threatlang.backends.watermark.embed import noisy_trigger_loss
from threatlang.backends.watermark.models import small_resnet
from threatlang.backends.watermark.param_noise import accuracy_under_noise, detached_params


def reference_loop(model: nn.Module, x, y, sigma: float, n: int, generator) -> torch.Tensor:
    """The reference code's pattern: perturb in place, evaluate, restore — one draw at a time."""
    model = copy.deepcopy(model).eval()
    out = []
    with torch.no_grad():
        for _ in range(n):
            noise = {}
            for name, p in model.named_parameters():
                noise[name] = torch.randn(p.shape, generator=generator) * sigma
                p.data = p.data + noise[name]
            out.append((model(x).argmax(-1) == y).float().mean())
            for name, p in model.named_parameters():
                p.data = p.data - noise[name]
    return torch.stack(out)


def plain_evaluations(model: nn.Module, x, y, n: int) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([(model(x).argmax(-1) == y).float().mean() for _ in range(n)])


def mlp(shape) -> nn.Module:
    d = shape[0] * shape[1] * shape[2]
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 256),
                         nn.ReLU(), nn.Linear(256, 10))  # fmt: skip


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_certify(name: str, model: nn.Module, x, y, n: int, repeats: int, chunk: int) -> dict:
    model.eval()
    params = detached_params(model)
    sigma = 0.2
    runs = {
        "reference": lambda: reference_loop(model, x, y, sigma, n, torch.Generator().manual_seed(0)),
        "loop": lambda: accuracy_under_noise(model, params, x, y, sigma, n,
                                             torch.Generator().manual_seed(0), chunk,
                                             NoiseStrategy.LOOP),
        "vmap": lambda: accuracy_under_noise(model, params, x, y, sigma, n,
                                             torch.Generator().manual_seed(0), chunk,
                                             NoiseStrategy.VMAP),
        "plain": lambda: plain_evaluations(model, x, y, n),
    }  # fmt: skip
    for fn in runs.values():  # warm-up
        fn()
    best = {k: float("inf") for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            best[k] = min(best[k], _time(fn))
    fastest = min(("loop", "vmap"), key=best.__getitem__)
    print(f"\n[{name}] n={n} draws, trigger set {tuple(x.shape)}, chunk {chunk}")
    for k, t in best.items():
        print(f"  {k:9s} {t:8.3f} s   ({1e3 * t / n:.2f} ms/draw)")
    print(f"  reference / loop = {best['reference'] / best['loop']:.2f}x, "
          f"reference / vmap = {best['reference'] / best['vmap']:.2f}x")  # fmt: skip
    print(f"  batched ({fastest}) / plain evaluations = {best[fastest] / best['plain']:.2f}x")
    return best


def bench_trigger_step(name: str, model: nn.Module, x, y, repeats: int) -> None:
    """One noisy trigger step of Algorithm 2: 4 levels x 8 draws, gradient averaged."""
    sigmas = torch.linspace(0.05, 0.2, 4).repeat_interleave(8)
    model.train()

    def step(strategy):
        model.zero_grad()
        noisy_trigger_loss(model, x, y, sigmas, torch.Generator().manual_seed(0), strategy)

    for s in (NoiseStrategy.LOOP, NoiseStrategy.VMAP):
        step(s)
    best = {s: min(_time(lambda s=s: step(s)) for _ in range(repeats))
            for s in (NoiseStrategy.LOOP, NoiseStrategy.VMAP)}  # fmt: skip
    loop, vm = best[NoiseStrategy.LOOP], best[NoiseStrategy.VMAP]
    print(f"[{name}] Algorithm 2 trigger step (32 draws, batch {len(x)}): loop {loop * 1e3:.0f} ms,"
          f" vmap {vm * 1e3:.0f} ms, loop / vmap = {loop / vm:.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    for shape in ((1, 8, 8), (1, 16, 16)):
        x = torch.rand((64, *shape), generator=g)
        y = torch.randint(0, 10, (64,), generator=g)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            cnn, dense = small_resnet(shape, 10), mlp(shape)
        for name, model in ((f"small_resnet {shape}", cnn), (f"mlp {shape}", dense)):
            bench_certify(name, model, x, y, args.n, args.repeats, args.chunk)
            bench_trigger_step(name, model, x[:32], y[:32], args.repeats)


if __name__ == "__main__":
    main()
