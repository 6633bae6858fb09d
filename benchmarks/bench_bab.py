"""Branch and bound on ACAS-Xu-shaped networks, side by side with the non-branching bound.

Networks: 5 inputs, 6 hidden layers of 50 ReLUs, 5 outputs, trained briefly on a smooth target
(`threatlang.backends.bab.acas_like`), with Sub/Div normalisation in the ONNX graph. Properties
in the VNN-COMP ACAS Xu style (an output bounded on a box; "output 0 is not the largest", a
disjunction; "not the smallest"; "neither 3 nor 4 is the smallest", an or of ands), imported
with `threatlang import-vnnlib` and run as specs: the same instances, in one run, decided by
(a) the bound alone (CROWN on the whole box, no branching, no attack) and (b) `certify bab`.

    nice -n 10 env OMP_NUM_THREADS=1 python benchmarks/bench_bab.py --seeds 0 1 2 --time-limit 60
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=400, help="training steps per network")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from threatlang.backends.bab.acas_like import write_instances
    from threatlang.backends.bab.adapter import EngineNet
    from threatlang.backends.bab.problem import build_problem
    from threatlang.interop.import_vnnlib import import_vnnlib
    from threatlang.models_io import load_model
    from threatlang.parse import load_all
    from threatlang.report import Status

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            root = Path(tmp) / f"net{seed}"
            csv = write_instances(root, seeds=(seed,), timeout=args.time_limit, steps=args.steps)
            specs = load_all(import_vnnlib(csv, root / "acas.threat"))
            for spec in specs:
                shape = tuple(spec.domain.shape)
                model = load_model(spec.model, shape)
                net = EngineNet(model, shape)
                problem = build_problem(spec.require, net.outputs)
                lo = torch.tensor(spec.threat.lower, dtype=torch.float64)[None]
                hi = torch.tensor(spec.threat.upper, dtype=torch.float64)[None]
                t0 = time.perf_counter()
                alone = bool(problem.closed_terms(net.bound(lo, hi, problem.c()).lower).all())
                t_alone = time.perf_counter() - t0
                record = _run(spec, Path(tmp) / f"run_{spec.name}", args.time_limit)
                sampled = _sampled_violations(model, problem, spec, shape)
                rows.append(
                    {
                        "net": seed,
                        "property": spec.name.split("_", 1)[1].rsplit("_", 1)[0],
                        "alone": "holds" if alone else "unknown",
                        "t_alone": t_alone,
                        "bab": record.values["verdict"],
                        "t_bab": record.seconds,
                        "domains": record.values["domains"],
                        "status": record.status,
                        "sampled": sampled,
                    }
                )
                r = rows[-1]
                print(
                    f"net {seed} {r['property']:8s} bound alone {r['alone']:8s} "
                    f"{r['t_alone']:.3f}s | bab {r['bab']:8s} {r['t_bab']:.2f}s "
                    f"{r['domains']} domains",
                    flush=True,
                )
    n = len(rows)
    decided_alone = sum(r["alone"] == "holds" for r in rows)
    decided = sum(r["status"] in (Status.CERTIFIED, Status.FALSIFIED) for r in rows)
    print()
    print("| net | property | bound alone | time (s) | bab verdict | time (s) | domains |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['net']} | {r['property']} | {r['alone']} | {r['t_alone']:.3f} | {r['bab']} "
            f"| {r['t_bab']:.2f} | {r['domains']} |"
        )
    t_bab = np.array([r["t_bab"] for r in rows])
    wrong = sum(r["sampled"] > 0 for r in rows if r["bab"] == "holds")
    print()
    print(
        f"decided: bound alone {decided_alone}/{n} (holds only: it cannot find counterexamples), "
        f"bab {decided}/{n} "
        f"(holds {sum(r['bab'] == 'holds' for r in rows)}, "
        f"violated {sum(r['bab'] == 'violated' for r in rows)}); "
        f"bab time per instance: median {np.median(t_bab):.2f}s, max {t_bab.max():.2f}s; "
        f"bound alone: mean {np.mean([r['t_alone'] for r in rows]):.3f}s; "
        f"'holds' instances where 20000 sampled inputs found a violation: {wrong}"
    )


def _sampled_violations(model, problem, spec, shape) -> int:
    """Violations among 20000 uniform inputs of the box (a check on every `holds`)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    lo = torch.tensor(spec.threat.lower)
    hi = torch.tensor(spec.threat.upper)
    x = lo + (hi - lo) * torch.rand(20000, len(lo), generator=gen)
    with torch.no_grad():
        y = model(x.reshape(-1, *shape).float()).reshape(20000, -1).double().numpy()
    return int(problem.violated(y).sum())


def _run(spec, out: Path, time_limit: float):
    """`threatlang run` of one imported spec, in this process; its one record."""
    from threatlang.api import run

    del time_limit  # the spec carries it (`certify bab { time_limit ... }`)
    return run(spec, output=out, quiet=True).records[0]


if __name__ == "__main__":
    main()
