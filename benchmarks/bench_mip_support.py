"""Solve time of the whole-support regret certificate (one MIP per agent, then cells) at the
chapter's widths: 1x2 with 1 x 128, 2x2 with 2 x 128 (§4.6.1).

    OMP_NUM_THREADS=1 python benchmarks/bench_mip_support.py --setting 1x2 --train-steps 600 --time-limit 600
    OMP_NUM_THREADS=1 python benchmarks/bench_mip_support.py --setting 1x2 --weights RUN/mechanism.pt

Trains the mechanism at the shipped specs' settings (or loads a run's ``mechanism.pt``), then
per agent prints the root MIP's bound and seconds, the bound after the cell search, the worst
point found, cells solved / open, and the solvers used.
"""

from __future__ import annotations

import argparse

import torch

from threatlang.backends.mip.certify import CertifyConfig
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig
from threatlang.backends.mip.regret import AttackConfig
from threatlang.backends.mip.solvers import SolverKind
from threatlang.backends.mip.support import certify_support
from threatlang.backends.mip.train import TrainConfig, train_mechanism
from threatlang.backends.mip.valuations import SupportBox

SETTINGS = {"1x2": (1, 1, 1024), "2x2": (2, 2, 64)}  # agents, layers of 128, bid grid


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setting", choices=list(SETTINGS), default="1x2")
    parser.add_argument("--train-steps", type=int, default=600)
    parser.add_argument("--weights", help="a run's mechanism.pt instead of training")
    parser.add_argument("--time-limit", type=float, default=600.0)
    parser.add_argument("--solver", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agents, layers, grid = SETTINGS[args.setting]
    mech = Mechanism(
        MechanismConfig(agents, 2, (128,) * layers), generator=torch.Generator().manual_seed(0)
    )
    if args.weights:
        mech.load_state_dict(torch.load(args.weights, map_location="cpu", weights_only=True))
    else:
        cfg = TrainConfig(
            steps=args.train_steps,
            attack=AttackConfig(3, 0.05, 1),
            rho_increment=0.05,
            stability_weight=0.02,
            misreport_grid=grid,
            lr_decay_at=0.8,
        )
        train_mechanism(mech, SupportBox(agents, 2), cfg, torch.Generator().manual_seed(1))
    mech = mech.double().eval()
    config = CertifyConfig(solver=SolverKind(args.solver), time_limit=args.time_limit)
    print("| agent | root bound | root s | bound | found | cells solved / open | solvers | s |")
    print("|---|---|---|---|---|---|---|---|")
    for agent in range(agents):
        c = certify_support(mech, agent, 0.0, 1.0, config)
        st = c.stats
        print(
            f"| {agent} | {st['root_bound']} | {st['root_seconds']:.0f} | {c.regret_bound} | "
            f"{c.regret_found:.4f} | {st['cells']} / {st['open_cells']} | {c.solver} | "
            f"{c.seconds:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
