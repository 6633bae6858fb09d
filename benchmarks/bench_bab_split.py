"""Input splitting side by side on VNN-COMP 2021 ACAS Xu, same instances, same process:

- `engine`: the general bound engine (`adapter.EngineNet`, every CROWN row) with the
  worse-child strong branching it shipped with (the state before the chain engine);
- `chain k`: the lean chain engine (`chain.ReluChain`: forward bounds, CROWN rows only for
  the neurons they leave unstable, exact decisions on affine boxes) with strong branching over
  the k dimensions of largest smear, judged by the sum of the children's margins.

Each cell gives the verdict, wall and CPU seconds of the search (loading excluded) and the
domains bounded. CPU seconds are the fairer number on a shared machine.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/bench_bab_split.py \\
        --vnncomp /work/vnncomp/vnncomp2021 --instances 4_3:1 2_2:1 3_3:2 --time-limit 60
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--vnncomp", type=Path, required=True)
    parser.add_argument(
        "--instances",
        nargs="+",
        default=["4_3:1", "2_2:1", "5_9:1", "3_3:2", "2_1:3"],
        help="NET:PROP, e.g. 4_3:1 for ACASXU_run2a_4_3 and prop_1.vnnlib",
    )
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--candidates", nargs="+", type=int, default=[2, 5])
    parser.add_argument("--no-engine", action="store_true", help="skip the `engine` column")
    args = parser.parse_args()

    import attrs
    import numpy as np
    import torch

    from threatlang.backends.bab import branching, input_split, search
    from threatlang.backends.bab.adapter import EngineNet
    from threatlang.backends.bab.confirm import Original
    from threatlang.backends.bab.plan import compile_plan
    from threatlang.backends.bab.problem import build_problem
    from threatlang.interop.import_vnnlib import import_vnnlib
    from threatlang.models_io import load_model, resolve_path
    from threatlang.parse import load_all

    torch.set_num_threads(1)
    bench = args.vnncomp / "benchmarks" / "acasxu"
    columns = ([] if args.no_engine else ["engine"]) + [f"chain {k}" for k in args.candidates]
    print("| instance | " + " | ".join(f"{c}: verdict, wall s, cpu s, domains" for c in columns))
    print("|---|" + "---|" * len(columns))
    real_of = search.ReluChain.of
    with tempfile.TemporaryDirectory() as tmp:
        for instance in args.instances:
            net_id, prop = instance.split(":")
            onnx = bench / f"ACASXU_run2a_{net_id}_batch_2000.onnx"
            out = import_vnnlib(
                bench / f"prop_{prop}.vnnlib",
                Path(tmp) / f"n{net_id}_{prop}.threat",
                onnx=onnx,
                allow_outside=True,
            )
            for spec in load_all(out):
                plan = compile_plan(spec)
                model = load_model(spec.model, plan.input_shape)
                net = EngineNet(model, plan.input_shape)
                problem = build_problem(spec.require, net.outputs)
                original = Original(plan.input_shape, onnx=str(resolve_path(spec.model)))
                boxes = getattr(spec.threat, "boxes", None) or [spec.threat]
                for box in boxes:
                    lo, hi = np.asarray(box.lower), np.asarray(box.upper)
                    cells = []
                    for column in columns:
                        if column == "engine":  # the state before: general engine, worse child
                            search.ReluChain.of = staticmethod(lambda net: None)
                            k, pick = 8, branching.pick_split
                        else:
                            search.ReluChain.of = real_of
                            k, pick = int(column.split()[1]), input_split.pick_input_split
                        search.pick_split = pick
                        o = attrs.evolve(
                            plan.options, time_limit=args.time_limit, split_candidates=k
                        )
                        t0, c0 = time.perf_counter(), time.process_time()
                        res = search.solve(net, problem, original, lo, hi, o)
                        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                        cells.append(f"{res.verdict} {wall:.2f} {cpu:.2f} {res.domains}")
                    print(f"| {net_id} prop_{prop} | " + " | ".join(cells) + " |", flush=True)
    search.ReluChain.of = real_of
    search.pick_split = branching.pick_split


if __name__ == "__main__":
    main()
