"""The revenue-regret front of the auction trainer: the chapter's augmented Lagrangian (eq. 4.2,
truthful revenue) against the menu-revenue objective (soft or straight-through best response),
at the shipped specs' settings, evaluated at checkpoints along one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_mip_objectives.py --setting 1x2 --steps 3008 \
        --objectives lagrangian menu:0.02 menu-st:0.02 --checkpoints 4

Settings (specs/auction_1x2.threat, auction_2x2.threat): batch 512, lr 1e-3 (/ 10 for the last
fifth), 3 ascent steps at 0.05 from the truthful bid and the best of a bid grid (1024 points for
1x2, 64 for 2x2), regret multiplier 5 updated every 6 batches with its step growing by 0.05, the
ReLU-stability weight 0.02; the menu objective's grid is 1024 bids (1x2) / 64 (2x2).
``--init default`` is the spec run's initialisation (``nn.Linear``'s, seeded); ``uniform`` the
seeded uniform one of earlier rows.

Measured per checkpoint, 1x2 (exact up to the grid: with one bidder the menu is the same for
every profile): revenue and menu revenue integrated over a 201^2 grid of true values
(trapezoid weights), each value best-responding over the 201^2 grid of bids plus the outside
option (the Manelli-Vincent optimum is 0.5491: a menu revenue above it is a bug), and the max
regret over that grid (201^2 values x 201^2 bids). 2x2: revenue on 2000 sampled profiles and
the regret found by the menu search (best of a 1024-point grid per bidder refined by a 200-step
ascent; ``--eval-grid``) on 500 of them (``--eval-profiles``): mean and max. CPU seconds are this process's, training only.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import torch

from threatlang.backends.mip.economics import evaluate_economics
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig
from threatlang.backends.mip.regret import AttackConfig
from threatlang.backends.mip.train import TrainConfig, TrainLog, train_mechanism
from threatlang.backends.mip.valuations import SupportBox, sample_profiles

SETTINGS = {"1x2": (1, (128,), 1024), "2x2": (2, (128, 128), 64)}


def dense_grid_1x2(mech: Mechanism, points: int = 201, chunk: int = 512) -> dict[str, float]:
    """Revenue, menu revenue and max regret of a 1-bidder mechanism over a grid of values and
    bids (the same grid): trapezoid-weighted means, max over the grid."""
    g = torch.linspace(0, 1, points, dtype=torch.float64)
    bids = torch.cartesian_prod(g, g)
    w1 = torch.ones(points, dtype=torch.float64)
    w1[0] = w1[-1] = 0.5
    weights = torch.outer(w1, w1).flatten()
    weights = weights / weights.sum()
    with torch.no_grad():
        alloc, pay = mech(bids[:, None, :])
        alloc, pay = alloc[:, 0, :], pay[:, 0]
        regret, menu_pay = 0.0, torch.empty(len(bids), dtype=torch.float64)
        for start in range(0, len(bids), chunk):
            v = bids[start : start + chunk]
            u = torch.addmm(-pay, v, alloc.T)  # (chunk, G)
            idx = torch.arange(start, start + len(v))
            best = u.max(dim=1)
            regret = max(regret, float((best.values - u[torch.arange(len(v)), idx]).max()))
            menu_pay[start : start + len(v)] = torch.where(best.values < 0, 0.0, pay[best.indices])
    return {
        "revenue": float((weights * pay).sum()),
        "menu_revenue": float((weights * menu_pay).sum()),
        "grid_max_regret": regret,
    }


def sampled_2x2(mech: Mechanism, profiles: int = 500, grid: int = 1024) -> dict[str, float]:
    box = SupportBox(2, 2)
    with torch.no_grad():
        values = sample_profiles(box, 2000, torch.Generator().manual_seed(2), torch.float64)
        revenue = float(mech(values)[1].sum(-1).mean())
    econ = evaluate_economics(
        mech,
        values[:profiles],
        box,
        AttackConfig(200, 0.02, 1),
        torch.Generator().manual_seed(3),
        grid,
    )
    return {
        "revenue": revenue,
        "menu_revenue": econ.menu_revenue,
        "regret_mean": float(econ.menu_regret.mean()),
        "regret_max": float(econ.menu_regret.max()),
    }


def parse_objective(text: str) -> tuple[str, float, bool]:
    """``lagrangian`` | ``menu:T`` | ``menu-st:T`` -> (label, temperature, straight-through)."""
    kind, _, temp = text.partition(":")
    if kind == "lagrangian":
        return "lagrangian (chapter)", 0.0, False
    if kind not in ("menu", "menu-st"):
        raise SystemExit(f"unknown objective {text!r}: lagrangian, menu:T or menu-st:T")
    t = float(temp or 0.02)
    st = kind == "menu-st"
    return (f"menu, {'straight-through, ' if st else ''}temperature {t:g}", t, st)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--setting", choices=list(SETTINGS), default="1x2")
    parser.add_argument("--steps", type=int, default=3008)
    parser.add_argument("--objectives", nargs="+", default=["lagrangian", "menu:0.02"])
    parser.add_argument("--checkpoints", type=int, default=1, help="evaluations along each run")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--rho-increment", type=float, default=0.05)
    parser.add_argument("--lr-decay-at", type=float, default=0.8)
    parser.add_argument("--menu-grid", type=int, default=0, help="0: the misreport grid's size")
    parser.add_argument("--init", choices=["default", "uniform"], default="default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-profiles", type=int, default=500, help="2x2: regret profiles")
    parser.add_argument("--eval-grid", type=int, default=1024, help="2x2: menu grid per bidder")
    parser.add_argument("--save", type=Path, help="folder for each checkpoint's state dict")
    args = parser.parse_args()
    torch.set_num_threads(1)
    agents, hidden, grid = SETTINGS[args.setting]
    box = SupportBox(agents, 2)
    if args.setting == "1x2":
        cols = ["revenue", "menu_revenue", "grid_max_regret"]
    else:
        cols = ["revenue", "menu_revenue", "regret_mean", "regret_max"]
    print(
        f"| objective | lr | steps | {' | '.join(c.replace('_', ' ') for c in cols)} | train CPU s |"
    )
    print("|---|---|---|" + "---|" * len(cols) + "---|")
    for text in args.objectives:
        label, temp, st = parse_objective(text)
        torch.manual_seed(args.seed)
        gen = torch.Generator().manual_seed(args.seed) if args.init == "uniform" else None
        mech = Mechanism(MechanismConfig(agents, 2, hidden), generator=gen)
        cfg = TrainConfig(
            steps=args.steps,
            batch_size=512,
            lr=args.lr,
            attack=AttackConfig(3, 0.05, 1),
            rho_increment=args.rho_increment,
            stability_weight=0.02,
            misreport_grid=grid,
            lr_decay_at=args.lr_decay_at,
            menu_grid=(args.menu_grid or grid) if temp else 0,
            menu_temperature=temp or 0.005,
            menu_straight_through=st,
        )
        every = max(1, args.steps // args.checkpoints)
        clock = {"cpu": 0.0, "t": time.process_time()}

        def evaluate(log: TrainLog, mech=mech, clock=clock, label=label, text=text) -> None:
            """Evaluate a copy now (training CPU seconds exclude the evaluation)."""
            clock["cpu"] += time.process_time() - clock["t"]
            if args.save is not None:
                args.save.mkdir(parents=True, exist_ok=True)
                name = f"{args.setting}_{text.replace(':', '_')}_lr{args.lr:g}_{log.step}.pt"
                torch.save(mech.state_dict(), args.save / name)
            m64 = copy.deepcopy(mech).double().eval()
            if agents == 1:
                res = dense_grid_1x2(m64)
            else:
                res = sampled_2x2(m64, args.eval_profiles, args.eval_grid)
            vals = " | ".join(f"{res[c]:.4f}" for c in cols)
            print(
                f"| {label} | {args.lr:g} | {log.step} | {vals} | {clock['cpu']:.0f} |", flush=True
            )
            clock["t"] = time.process_time()

        gen = torch.Generator().manual_seed(args.seed + 1)
        train_mechanism(mech, box, cfg, gen, on_step=evaluate, log_every=every)


if __name__ == "__main__":
    main()
