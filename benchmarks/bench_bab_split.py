"""Input branching side by side on VNN-COMP 2021 ACAS Xu: smear (bisect the dimension of
largest |coefficient| x width, `split_candidates 1`) against strong branching (bound the
children of every dimension, keep the best pair; the default), same instances, same run.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/bench_bab_split.py \
        --vnncomp /work/vnncomp/vnncomp2021 --nets 1_2 2_2 3_3 4_5 5_9 --props 1 2 --time-limit 30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vnncomp", type=Path, required=True)
    parser.add_argument("--nets", nargs="+", default=["1_2", "2_2", "3_3", "4_5", "5_9"])
    parser.add_argument("--props", nargs="+", default=["1", "2"])
    parser.add_argument("--time-limit", type=float, default=30.0)
    args = parser.parse_args()

    import attrs
    import numpy as np
    import torch

    from threatlang.backends.bab.adapter import EngineNet
    from threatlang.backends.bab.confirm import Original
    from threatlang.backends.bab.plan import compile_plan
    from threatlang.backends.bab.problem import build_problem
    from threatlang.backends.bab.search import solve
    from threatlang.interop.import_vnnlib import import_vnnlib
    from threatlang.models_io import load_model, resolve_path
    from threatlang.parse import load_all

    torch.set_num_threads(1)
    bench = args.vnncomp / "benchmarks" / "acasxu"
    print("| instance | smear: verdict | s | domains | strong: verdict | s | domains |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for net_id in args.nets:
            onnx = bench / f"ACASXU_run2a_{net_id}_batch_2000.onnx"
            for prop in args.props:
                out = import_vnnlib(
                    bench / f"prop_{prop}.vnnlib",
                    Path(tmp) / f"n{net_id}_{prop}.threat",
                    onnx=onnx,
                    allow_outside=True,
                )
                cells = []
                for spec in load_all(out):
                    plan = compile_plan(spec)
                    model = load_model(spec.model, plan.input_shape)
                    net = EngineNet(model, plan.input_shape)
                    problem = build_problem(spec.require, net.outputs)
                    original = Original(plan.input_shape, onnx=str(resolve_path(spec.model)))
                    lo, hi = np.asarray(spec.threat.lower), np.asarray(spec.threat.upper)
                    for k in (1, 8):
                        o = attrs.evolve(
                            plan.options, time_limit=args.time_limit, split_candidates=k
                        )
                        t0 = time.perf_counter()
                        res = solve(net, problem, original, lo, hi, o)
                        cells += [res.verdict, f"{time.perf_counter() - t0:.2f}", res.domains]
                print(f"| {net_id} prop_{prop} | " + " | ".join(map(str, cells)) + " |", flush=True)


if __name__ == "__main__":
    main()
