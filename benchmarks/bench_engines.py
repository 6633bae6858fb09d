"""Our bound engine against auto_LiRPA on the same boxes, side by side in one process.

For each zoo network (tests/bounds/zoo.py: MLP, CNNs, BN + avg-pool, max-pool, residual
blocks, residual-in-forward, Sequential subclass with a skip, input normalisation, two
branches) and two box kinds (l-inf balls around 64 inputs; the 2x2 patch set of 4 inputs, one
box per placement = 100 boxes), bounds the classification margins with IBP and CROWN in both
engines and prints: best-of-3 seconds, the time ratio auto_LiRPA / ours, and the bound gap
(ours - auto_LiRPA, mean and min over margins; positive = ours tighter). Our CROWN is the
default (two intermediate passes, one intersected with IBP, one replacing IBP on the unstable
neurons as auto_LiRPA does, run as one until their boxes differ; best margin kept); auto_LiRPA
runs in conv_mode matrix. Run: python benchmarks/bench_engines.py [--repeats 3]

``--chain``: instead, the path branch and bound takes (``backends/bab/adapter.py``: CROWN over
``capture(model).chain()`` with ``back_substitute``, every ReLU's input tightened on all its
neurons and intersected with IBP, float64) on an ACAS-Xu-shaped MLP (5 -> 6 x 50 -> 5), against
auto_LiRPA's CROWN on the same boxes, for 16, 64 and 256 boxes.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bounds.zoo import ZOO, build, inputs  # noqa: E402
from threatlang.backends.ibp.patches import Locations, dense_box, mask_tensor, offsets, square  # noqa: E402  # noqa: E402
from threatlang.bounds import BackwardOptions, Box, LowerSlope, back_substitute, capture  # noqa: E402
from threatlang.bounds.crown import Method, bound_graph  # noqa: E402
from threatlang.bounds.engine import margin_matrix  # noqa: E402
from threatlang.bounds.inputs import BoxInput  # noqa: E402
from threatlang.bounds.lirpa import LirpaNetwork  # noqa: E402
from threatlang.bounds.nonlinear import BoundReLU  # noqa: E402


def best_of(fn, repeats: int) -> tuple[float, torch.Tensor]:
    out, times = None, []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def boxes(kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    if kind == "linf":
        x = inputs(64, seed=1)
        return (x - 0.03).clamp(0, 1), (x + 0.03).clamp(0, 1)
    x = inputs(4, seed=2)
    offs = offsets(Locations(), x.shape[-2:], (2, 2))
    box = dense_box(x, mask_tensor(square(2)), offs, 0.0, 1.0)
    return box.lo, box.hi


def _ours(graph, lo, hi, method, c) -> torch.Tensor:
    return bound_graph(graph, lo, hi, method, c, slope=LowerSlope.ADAPTIVE, need_upper=False).lb


def _theirs(lirpa, inp, c, method) -> torch.Tensor:
    return lirpa.bounds(inp, c, method)[0]


def _chain_crown(ops, lo: torch.Tensor, hi: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The adapter's CROWN over a chain of ops (lower bounds of ``c @ y``, (N, S))."""
    n = lo.shape[0]
    box = Box.from_bounds(lo, hi)
    inp, trace = BoxInput(box), {}
    opts = BackwardOptions(LowerSlope.ADAPTIVE)
    for i, op in enumerate(ops):
        if isinstance(op, BoundReLU) and any(isinstance(o, BoundReLU) for o in ops[:i]):
            d = box.centre[0].numel()
            eye = torch.eye(d, dtype=lo.dtype)
            spec = torch.cat([eye, -eye]).reshape(1, 2 * d, d).expand(n, -1, -1)
            b = inp.concretize(*back_substitute(ops[:i], spec, trace, opts))
            low = torch.maximum(box.lo, b[:, :d])
            box = Box.from_bounds(low, torch.maximum(torch.minimum(box.hi, -b[:, d:]), low))
        trace[id(op)] = box
        box = op.interval(box, trace)
    a = c.unsqueeze(0).expand(n, -1, -1)
    return inp.concretize(*back_substitute(ops, a, trace, opts))


def chain(repeats: int) -> None:
    from backends.bab.acas_like import mlp

    model = mlp(0).to(torch.float64).eval()
    ops = capture(model, torch.zeros(1, 5, dtype=torch.float64)).chain()
    lirpa = LirpaNetwork(model)
    print(
        f"{'boxes':>6} {'ours s':>8} {'lirpa s':>8} {'lirpa/ours':>10} {'gap mean':>10} {'gap min':>10}"
    )
    for n in (16, 64, 256):
        gen = torch.Generator().manual_seed(n)
        x = torch.rand((n, 5), generator=gen, dtype=torch.float64)
        lo, hi = x - 0.02, x + 0.02
        c = torch.randn((4, 5), generator=gen, dtype=torch.float64)
        inp = BoxInput(Box.from_bounds(lo, hi))
        ours = functools.partial(_chain_crown, ops, lo, hi, c)
        theirs = functools.partial(
            _theirs, lirpa, inp, c.unsqueeze(0).expand(n, -1, -1), Method.CROWN
        )
        theirs()
        t_ours, b_ours = best_of(ours, repeats)
        t_lirpa, b_lirpa = best_of(theirs, repeats)
        gap = b_ours - b_lirpa
        print(
            f"{n:>6} {t_ours:8.4f} {t_lirpa:8.4f} {t_lirpa / t_ours:10.1f} "
            f"{float(gap.mean()):+10.2e} {float(gap.min()):+10.2e}",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--chain", action="store_true", help="the branch-and-bound chain path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    warnings.filterwarnings("ignore")
    if args.chain:
        chain(args.repeats)
        return
    print(
        f"{'network':<20} {'boxes':<6} {'method':<6} {'ours s':>8} {'lirpa s':>8} "
        f"{'lirpa/ours':>10} {'gap mean':>10} {'gap min':>10}"
    )
    for name in ZOO:
        model = build(name)
        graph = capture(model, inputs())
        lirpa = LirpaNetwork(model)
        for kind in ("linf", "patch"):
            lo, hi = boxes(kind)
            c = margin_matrix(model((lo + hi) / 2).argmax(1), 4)
            inp = BoxInput(Box.from_bounds(lo, hi))
            for method in (Method.IBP, Method.CROWN):
                ours = functools.partial(_ours, graph, lo, hi, method, c)
                theirs = functools.partial(_theirs, lirpa, inp, c, method)
                theirs()  # build auto_LiRPA's graph before timing
                t_ours, b_ours = best_of(ours, args.repeats)
                t_lirpa, b_lirpa = best_of(theirs, args.repeats)
                gap = b_ours - b_lirpa
                print(
                    f"{name:<20} {kind:<6} {method.value:<6} {t_ours:8.4f} {t_lirpa:8.4f} "
                    f"{t_lirpa / t_ours:10.1f} {float(gap.mean()):+10.2e} {float(gap.min()):+10.2e}",
                    flush=True,
                )
    print("(boxes: linf = 64 inputs, eps 0.03; patch = 4 inputs x 25 placements of a 2x2 patch;")
    print(" torch threads 1; gap = ours - auto_LiRPA on margin lower bounds, > 0: ours tighter)")


if __name__ == "__main__":
    main()
