"""Tables 5.2 and 5.3 in small: certified trigger accuracy per trigger scheme and per noise σ.

For each (trigger scheme, σ) it embeds a certified watermark with Algorithm 2 (σ_max = σ) on the
bundled digits, then certifies the median smoothed trigger accuracy at σ for every radius, and
reports the test accuracy next to it (the σ trade-off of Table 5.3).
Run: ``python benchmarks/bench_watermark_sigma.py [--epochs 30] [--samples 1000]``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from threatlang.backends.watermark.certify import certify_watermark
from threatlang.backends.watermark.config import NoiseStrategy, TriggerKind
from threatlang.backends.watermark.embed import EmbedConfig, embed_watermark
from threatlang.backends.watermark.models import small_resnet
from threatlang.backends.watermark.param_noise import detached_params, plain_accuracy
from threatlang.backends.watermark.triggers import TriggerConfig, make_trigger_set

RADII = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    return x[order], y[order]


def run(kind: TriggerKind, sigma: float, epochs: int, samples: int) -> tuple:
    x, y = digits()
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    test, owner = (t(x[:450]), t(y[:450])), (t(x[450:1124]), t(y[450:1124]))
    trig = make_trigger_set(TriggerConfig(kind, count=64), x[450:1124], y[450:1124])
    trigger = (t(trig.x), t(trig.y))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = small_resnet((1, 8, 8), 10)
    config = EmbedConfig(epochs=epochs, warmup_epochs=3, lr=0.05, sigma=sigma, replay=4,
                         samples=8, lr_milestones=(int(0.7 * epochs),),
                         strategy=NoiseStrategy.LOOP)  # fmt: skip
    start = time.perf_counter()
    embed_watermark(model, owner, trigger, config, torch.Generator().manual_seed(0))
    model.eval()
    params = detached_params(model)
    cert = certify_watermark(model, params, *trigger, sigma, samples, RADII, 0.999,
                             torch.Generator().manual_seed(1), strategy=NoiseStrategy.LOOP)  # fmt: skip
    return plain_accuracy(model, params, *test), cert, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--samples", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    jobs = [(TriggerKind.TEXT, s) for s in (0.1, 0.2, 0.3)]
    jobs += [(TriggerKind.NOISE, 0.2), (TriggerKind.UNRELATED, 0.2)]
    print("| trigger | σ | test acc | smoothed median | " + " | ".join(f"ε={r:g}" for r in RADII)
          + " | seconds |")  # fmt: skip
    print("|---" * (len(RADII) + 5) + "|")
    for kind, sigma in jobs:
        acc, cert, secs = run(kind, sigma, args.epochs, args.samples)
        cells = ["—" if v is None else f"{100 * v:.1f}%" for v in cert.by_radius().values()]
        print(f"| {kind.value} | {sigma:g} | {100 * acc:.1f}% | {100 * cert.median:.1f}% | "
              + " | ".join(cells) + f" | {secs:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
