"""Solve time of the whole-support regret certificate (one MIP per agent, then cells) at the
chapter's widths: 1x2 with 1 x 128, 2x2 with 2 x 128 (§4.6.1).

    OMP_NUM_THREADS=1 python benchmarks/bench_mip_support.py --setting 1x2 --train-steps 600 --time-limit 600
    OMP_NUM_THREADS=1 python benchmarks/bench_mip_support.py --setting 1x2 --weights RUN/mechanism.pt
    ... --method joint  # the search before the corner bound (two copies in one MIP per cell)

Trains the mechanism at the shipped specs' settings (or loads a run's ``mechanism.pt``), seeds
the search with the worst point of a grid attack (as a run seeds it with its menu search), then
per agent prints the first bound and its seconds, the bound after the cell search, the worst
point found, cells bounded / open, the MIPs by kind and the solvers used.
"""

from __future__ import annotations

import argparse

import attrs
import torch

from threatlang.backends.mip.certify import CertifyConfig
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig
from threatlang.backends.mip.regret import AttackConfig
from threatlang.backends.mip.solvers import SolverKind
from threatlang.backends.mip.support import (
    CellBound,
    SupportSearch,
    Witness,
    certify_support,
    regret_at_points,
)
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
    parser.add_argument("--method", choices=[m.value for m in CellBound], default="corners")
    parser.add_argument("--agents", help="comma-separated agents (default: all)")
    parser.add_argument(
        "--cell-limit", type=float, help="seconds per cell MIP (default: the search's)"
    )
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
    search = SupportSearch(method=CellBound(args.method))
    if args.cell_limit:
        search = attrs.evolve(search, cell_limit=args.cell_limit)
    chosen = range(agents) if not args.agents else [int(a) for a in args.agents.split(",")]
    print(
        "| agent | method | first bound | first s | bound | found (attack) | cells / open | "
        "MIPs (s) | solvers | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for agent in chosen:
        start = grid_witness(mech, agent, 33 if agents == 1 else 17)
        c = certify_support(mech, agent, 0.0, 1.0, config, start=start, search=search)
        st = c.stats
        mips = ", ".join(f"{k} {n} ({st['mip_seconds'][k]:.0f})" for k, n in st["mips"].items())
        bound = "-" if c.regret_bound is None else f"{c.regret_bound:.4f}"
        first = "-" if st["root_bound"] is None else f"{st['root_bound']:.4f}"
        print(
            f"| {agent} | {args.method} | {first} | {st['root_seconds']:.0f} | {bound} | "
            f"{c.regret_found:.4f} ({start.regret:.4f}) | {st['cells']} / {st['open_cells']} | "
            f"{mips} | {c.solver} | {c.seconds:.0f} |",
            flush=True,
        )


def grid_witness(mech: Mechanism, agent: int, points: int = 65, others: int = 9) -> Witness:
    """The worst point of a grid attack: true values and misreports on a ``points`` grid, the
    other bids on an ``others`` grid (a lower bound the search starts from)."""
    g = torch.linspace(0, 1, points, dtype=torch.float64)
    pairs = torch.cartesian_prod(g, g)
    n_others = mech.config.agents - 1
    og = torch.linspace(0, 1, others, dtype=torch.float64)
    rest = torch.zeros(1, 0, 2, dtype=torch.float64)
    if n_others:
        rest = torch.cartesian_prod(*[og] * (2 * n_others)).reshape(-1, n_others, 2)
    best = None
    for o in rest:
        for v in pairs:
            n = len(pairs)
            r = regret_at_points(mech, agent, v.expand(n, 2), pairs, o.expand(n, n_others, 2))
            k = int(r.argmax())
            if best is None or float(r[k]) > best.regret:
                best = Witness(v.numpy(), pairs[k].numpy(), o.numpy(), float(r[k]))
    return best


if __name__ == "__main__":
    main()
