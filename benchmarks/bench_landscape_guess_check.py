"""Model evaluations per second: vectorised Guess & Check against a one-model-at-a-time loop.

Both score the same guessed parameter vectors (uniform on [-1, 1]) on the same 32-sample
2-class digits training set: loss (normalised cross-entropy) and accuracy per model. The
vectorised path is ``FlatModel.logits`` (``torch.func.vmap`` over ``functional_call``, i.e.
batched matmuls / convolutions); the loop calls the module once per guess. Reported: models/s for
each and their ratio, measured side by side, median of several repeats (the machine is shared).

    python benchmarks/bench_landscape_guess_check.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch
from sklearn.datasets import load_digits

from threatlang.backends.landscape.losses import LossKind, accuracy, training_loss
from threatlang.backends.landscape.models import FlatModel, lenet, mlp
from threatlang.backends.landscape.splits import sample_few_shot, two_class_pool


def _data():
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    pool = two_class_pool(x[:1200], d.target[:1200], x[1200:], d.target[1200:], (3, 8))
    fs = sample_few_shot(pool, 32, seed=0)
    return fs.x_train, fs.y_train


def _score(logits, y):
    return training_loss(logits, y, LossKind.NORMALISED), accuracy(logits, y)


def _rate(fn, count: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return count / statistics.median(times)


def bench(name: str, module, x, y, batch: int, loop_count: int, repeats: int = 5) -> dict:
    fm = FlatModel(module)
    thetas = fm.sample_uniform(batch, 1.0, torch.Generator().manual_seed(0))
    few = thetas[:loop_count]
    with torch.no_grad():
        # same numbers either way
        a = _score(fm.logits(few, x), y)
        b = _score(fm.logits_loop(few, x), y)
        assert torch.allclose(a[0], b[0], atol=1e-4) and torch.equal(a[1], b[1])
        vec = _rate(lambda: _score(fm.logits(thetas, x), y), batch, repeats)
        loop = _rate(lambda: _score(fm.logits_loop(few, x), y), loop_count, repeats)
    return {
        "model": name,
        "params": fm.num_params,
        "batch": batch,
        "vectorised": vec,
        "loop": loop,
        "ratio": vec / loop,
    }


def bench_speculative(x, y, evaluations: int = 3000) -> dict:
    """Pattern Search with speculative batches vs one proposal per call: same path, less time."""
    from threatlang.backends.landscape.levels import LossWindow
    from threatlang.backends.landscape.local_search import SearchSchedule, local_search
    from threatlang.backends.landscape.pattern_search import CoordinateSteps

    fm = FlatModel(mlp(64, (16,), 2))
    theta0 = fm.default_init(torch.Generator().manual_seed(0))
    never = (LossWindow(0.0, 1e-9),)  # keep searching for the whole budget
    out = {}
    for max_batch in (1, 256):
        sched = SearchSchedule(
            1.0, 2.0, fm.num_params, max_evaluations=evaluations, max_batch=max_batch
        )
        stream = CoordinateSteps(fm.num_params, torch.Generator().manual_seed(1))
        start = time.perf_counter()
        res = local_search(fm, x, y, theta0, stream, sched, never)
        out[max_batch] = (res, time.perf_counter() - start)
    (a, ta), (b, tb) = out[1], out[256]
    assert a.accepted_losses == b.accepted_losses and torch.equal(a.theta, b.theta)
    return {
        "evaluations": a.evaluations,
        "accepted": len(a.accepted_losses) - 1,
        "sequential_s": ta,
        "speculative_s": tb,
    }


def main() -> None:
    torch.set_num_threads(1)
    x, y = _data()
    rows = [
        bench("mlp_small (64-16-2)", mlp(64, (16,), 2), x, y, batch=2048, loop_count=256),
        bench("lenet_tiny", lenet(1, 8, 2), x, y, batch=512, loop_count=128),
    ]
    print("| model | parameters | vectorised models/s (batch) | loop models/s | ratio |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['params']} | {r['vectorised']:,.0f} ({r['batch']}) | {r['loop']:,.0f} | {r['ratio']:.1f}x |"
        )
    s = bench_speculative(x, y)
    print()
    print(
        "| Pattern Search, mlp_small, 32 samples | evaluations | accepted steps | one per call | speculative batches | ratio |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| identical search path (asserted) | {s['evaluations']} | {s['accepted']} | {s['sequential_s']:.2f} s "
        f"| {s['speculative_s']:.2f} s | {s['sequential_s'] / s['speculative_s']:.1f}x |"
    )


if __name__ == "__main__":
    main()
