"""Solve time per (profile, agent) of the `mip` backend: solver x big-M bound method, side by side.

For 1x2 and 2x2 auctions (free payment = MILP, fractional payment = bilinear), trains a small
mechanism per setting (or loads a run's ``mechanism.pt``), then certifies the same held-out
profiles with every (solver, bounds) pair and prints mean / median / p95 solve time, unknowns,
unstable ReLUs and the ratio of each mean to the Gurobi + linear-bounds mean. One thread.

    python benchmarks/bench_mip.py --profiles 10 --train-steps 400
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from threatlang.backends.mip.bounds import BoundMethod
from threatlang.backends.mip.certify import CertifyConfig, certify_agent
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig, PaymentKind
from threatlang.backends.mip.regret import AttackConfig
from threatlang.backends.mip.solvers import SolverKind
from threatlang.backends.mip.solvers.gurobi import licence_is_limited
from threatlang.backends.mip.train import TrainConfig, train_mechanism
from threatlang.backends.mip.valuations import SupportBox, sample_profiles

SETTINGS = {  # name -> (agents, items, hidden)
    "1x2": (1, 2, (32,)),
    "2x2": (2, 2, (32, 32)),
}


def trained(agents, items, hidden, payment, steps, seed, stability: float = 0.02) -> Mechanism:
    gen = torch.Generator().manual_seed(seed)
    mech = Mechanism(MechanismConfig(agents, items, hidden, payment=payment), generator=gen)
    cfg = TrainConfig(
        steps=steps,
        batch_size=256,
        lr=3e-3,
        attack=AttackConfig(10, 0.05, 1),
        stability_weight=stability,
    )
    train_mechanism(mech, SupportBox(agents, items), cfg, gen)
    return mech.double().eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=10)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--time-limit", type=float, default=30.0)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--payments", nargs="+", default=["free", "fractional"])
    parser.add_argument("--solvers", nargs="+", default=["gurobi", "auto", "scip", "highs"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    limited = licence_is_limited()
    print(f"gurobi size-limited licence: {limited}")
    header = "| setting | payment | solver | bounds | mean s | median s | p95 s | unknown | unstable ReLUs | solver used | mean / (gurobi, linear) |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for name in args.settings:
        agents, items, hidden = SETTINGS[name]
        for payment in args.payments:
            t0 = time.perf_counter()
            mech = trained(agents, items, hidden, PaymentKind(payment), args.train_steps, seed=0)
            if mech.config.payment is PaymentKind.FREE:
                mech.clip_payments = True
            train_s = time.perf_counter() - t0
            values = sample_profiles(
                SupportBox(agents, items),
                args.profiles,
                torch.Generator().manual_seed(7),
                dtype=torch.float64,
            )
            rows, ref = [], None
            for solver in map(SolverKind, args.solvers):
                if solver is SolverKind.AUTO and not (limited and payment == "fractional"):
                    continue  # auto only differs from gurobi when the licence forces a fallback
                if solver is SolverKind.SCIP and payment == "free":
                    continue  # SCIP is the open-source path for the bilinear models only
                for bounds in (BoundMethod.LINEAR, BoundMethod.INTERVAL):
                    cfg = CertifyConfig(solver=solver, bounds=bounds, time_limit=args.time_limit)
                    certs = [
                        certify_agent(mech, values[k].numpy(), agent, 0.0, 1.0, cfg, limited)
                        for k in range(args.profiles)
                        for agent in range(agents)
                    ]
                    secs = np.array([c.seconds for c in certs])
                    unknown = sum(c.certified_regret is None for c in certs)
                    unstable = np.mean([c.stats.get("unstable_relus", 0) for c in certs])
                    used = ",".join(sorted({c.solver for c in certs}))
                    if solver is SolverKind.GUROBI and bounds is BoundMethod.LINEAR:
                        ref = secs.mean() if unknown < len(certs) or used != "gurobi" else None
                    rows.append((solver.value, bounds.value, secs, unknown, unstable, used))
            for solver, bounds, secs, unknown, unstable, used in rows:
                ratio = f"{secs.mean() / ref:.2f}" if ref else "-"
                print(
                    f"| {name} | {payment} | {solver} | {bounds} | {secs.mean():.3f} | "
                    f"{np.median(secs):.3f} | {np.percentile(secs, 95):.3f} | {unknown}/{len(secs)} | "
                    f"{unstable:.1f} | {used} | {ratio} |"
                )
            print(f"<!-- {name} {payment}: trained {args.train_steps} steps in {train_s:.0f}s -->")


if __name__ == "__main__":
    main()
