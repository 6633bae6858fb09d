"""1x2 auction: the chapter's augmented Lagrangian (eq. 4.2, truthful revenue) against the menu
revenue objective, same seed, batches and settings as specs/auction_1x2.threat.

    OMP_NUM_THREADS=1 python benchmarks/bench_mip_objectives.py --steps 3008 --temperatures 0.005

Reports for each trained network: truthful revenue and menu revenue on 1000 profiles (every
bidder best-responds: the best of a 4096-point grid refined by 1000-step ascent, outside option
included; the Manelli-Vincent optimum is 0.5491: above it is a bug), the max regret on a dense
grid over the whole support (201^2 true values x 201^2 misreports), and training CPU seconds.
"""

from __future__ import annotations

import argparse
import time

import torch

from threatlang.backends.mip.economics import evaluate_economics
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig
from threatlang.backends.mip.regret import AttackConfig
from threatlang.backends.mip.train import TrainConfig, train_mechanism
from threatlang.backends.mip.valuations import SupportBox, sample_profiles


def grid_max_regret(mech: Mechanism, points: int = 201) -> float:
    g = torch.linspace(0, 1, points, dtype=torch.float64)
    bids = torch.cartesian_prod(g, g)
    with torch.no_grad():
        alloc, pay = mech(bids[:, None, :])
        best = 0.0
        for start in range(0, len(bids), 2048):
            v = bids[start : start + 2048]
            u = v @ alloc[:, 0, :].T - pay[:, 0]
            truthful = u[torch.arange(len(v)), torch.arange(start, start + len(v))]
            best = max(best, float((u.max(dim=1).values - truthful).max()))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3008)
    parser.add_argument("--temperatures", type=float, nargs="+", default=[0.005])
    parser.add_argument("--rho-increment", type=float, default=0.05)
    args = parser.parse_args()
    torch.set_num_threads(1)
    box = SupportBox(1, 2)
    runs = [("lagrangian (chapter)", 0, 0.0)] + [
        (f"menu, temperature {t:g}", 1024, t) for t in args.temperatures
    ]
    print("| objective | steps | revenue | menu revenue | grid max regret | train CPU s |")
    print("|---|---|---|---|---|---|")
    for label, menu_grid, temp in runs:
        mech = Mechanism(MechanismConfig(1, 2, (128,)), generator=torch.Generator().manual_seed(0))
        cfg = TrainConfig(
            steps=args.steps,
            batch_size=512,
            lr=1e-3,
            attack=AttackConfig(3, 0.05, 1),
            rho_increment=args.rho_increment,
            stability_weight=0.02,
            misreport_grid=1024,
            lr_decay_at=0.8,
            menu_grid=menu_grid,
            menu_temperature=temp or 0.005,
        )
        t = time.process_time()
        train_mechanism(mech, box, cfg, torch.Generator().manual_seed(1), log_every=10**9)
        cpu = time.process_time() - t
        m64 = mech.double().eval()
        values = sample_profiles(box, 1000, torch.Generator().manual_seed(2), torch.float64)
        econ = evaluate_economics(
            m64, values, box, AttackConfig(1000, 0.02, 2), torch.Generator().manual_seed(3), 4096
        )
        print(
            f"| {label} | {args.steps} | {econ.revenue:.4f} | {econ.menu_revenue:.4f} | "
            f"{grid_max_regret(m64):.4f} | {cpu:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
