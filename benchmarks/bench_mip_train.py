"""Auction trainer throughput: the trainer before issue 22 against today's, side by side.

    OMP_NUM_THREADS=1 python benchmarks/bench_mip_train.py --steps 200 --rounds 3

Both run the same algorithm at the specs' settings (batch 512; 3 ascent steps at 0.05 from the
truthful bid and from the best point of a bid grid: 1024 points for 1x2, 64 for 2x2; stability
weight 0.02), one torch thread, alternating rounds (ABAB) so load drifts hit both alike. The
*previous* trainer is kept here verbatim in spirit: per ascent step a forward with gradients
(weights included) and a second one without, a new ``torch.optim.Adam`` per batch, sort-based
sparsemax, ``argmax`` over the bid grid, separate forwards for the truthful and deviating
utilities, the stability regulariser through the bound engine on one box per profile,
``torch.optim.Adam`` for the net.
The first ``torch.optim.Adam()`` of a process imports ``torch._dynamo``: timed in a fresh
interpreter and reported on its own line (steady-state rates exclude it). Rates are medians over
rounds, per wall second and per CPU second of this process (the latter is steadier on a
shared box), and the best round per CPU second (the least disturbed by other processes).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time

import torch

from threatlang.backends.mip import mechanisms
from threatlang.backends.mip.bounds import interval_bounds
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig
from threatlang.backends.mip.menu import argmax_rows, grid_bids
from threatlang.backends.mip.regret import AttackConfig, deviation_utilities
from threatlang.backends.mip.sparsemax import sparsemax_sorted
from threatlang.backends.mip.train import TrainConfig, train_mechanism
from threatlang.backends.mip.valuations import SupportBox, sample_profiles

SETTINGS = {"1x2": (1, (128,), 1024), "2x2": (2, (128, 128), 64)}


@contextlib.contextmanager
def sorted_sparsemax():
    """The mechanism's allocation through the sort-based sparsemax (the previous default)."""
    saved = mechanisms.sparsemax
    mechanisms.sparsemax = sparsemax_sorted
    try:
        yield
    finally:
        mechanisms.sparsemax = saved


def legacy_stability(layers, values: torch.Tensor, box: SupportBox) -> torch.Tensor:
    """The regulariser through the bound engine, one box per (profile, agent)."""
    agents = values.shape[-2]
    eye = torch.eye(agents, dtype=values.dtype)[:, :, None]
    base = values.unsqueeze(-3) * (1 - eye)
    lo, hi = base + box.low * eye, base + box.high * eye
    lo, hi = lo.flatten(0, 1).flatten(-2), hi.flatten(0, 1).flatten(-2)
    bounds = interval_bounds(layers, lo, hi)[:-1]
    return sum(-torch.tanh(1 + u * lo_).sum(dim=-1) for lo_, u in bounds).mean()


def legacy_best_grid_bids(mech, values, grid, chunk_rows: int = 1 << 16):
    """The grid search as the previous loop ran it (frozen here: ``menu.best_grid_bids`` has
    since changed): one forward of the grid for one bidder, else every deviation profile of a
    chunk of 65,536 rows through ``deviation_utilities``."""
    b, a, _ = values.shape
    with torch.no_grad():
        if a == 1:
            alloc, pay = mech(grid[:, None, :])
            u = torch.addmm(-pay[:, 0], values[:, 0, :], alloc[:, 0, :].T)
            return grid[argmax_rows(u)][:, None, :]
        per = max(1, chunk_rows // (len(grid) * a))
        out = []
        for start in range(0, b, per):
            v = values[start : start + per]
            m = grid[:, None, None, :].expand(len(grid), len(v), a, grid.shape[-1])
            out.append(grid[deviation_utilities(mech, v, m).argmax(dim=0)])
        return torch.cat(out)


def legacy_find_misreports(mech, values, box, config, starts):
    m = torch.stack([values, *starts]).detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([m], lr=config.lr)
    with torch.no_grad():
        best = deviation_utilities(mech, values, m).max(dim=0)
        best_m = torch.gather(m, 0, best.indices[None, ..., None].expand(1, *m.shape[1:]))[0]
        best_u = best.values
    for _ in range(config.steps):
        opt.zero_grad()
        u = deviation_utilities(mech, values, m)
        (-u.sum()).backward()
        opt.step()
        with torch.no_grad():
            m.clamp_(box.low, box.high)
            u = deviation_utilities(mech, values, m)
            cand = u.max(dim=0)
            better = cand.values > best_u
            cand_m = torch.gather(m, 0, cand.indices[None, ..., None].expand(1, *m.shape[1:]))[0]
            best_m = torch.where(better[..., None], cand_m, best_m)
            best_u = torch.where(better, cand.values, best_u)
    return best_m.detach()


def legacy_train(mech, box, cfg: TrainConfig, gen) -> None:
    """The previous loop (regret-multiplier bookkeeping as in ``train_mechanism``)."""
    opt = torch.optim.Adam(mech.parameters(), lr=cfg.lr)
    lam = torch.full((box.agents,), cfg.lambda_init)
    rho = cfg.rho
    layers = [(lin.weight, lin.bias) for lin in mech.trunk] + [
        (mech.pay_head.weight, mech.pay_head.bias)
    ]
    grid = grid_bids(box, cfg.misreport_grid, torch.float32, "cpu")
    for step in range(1, cfg.steps + 1):
        values = sample_profiles(box, cfg.batch_size, gen)
        mech.eval()
        m = legacy_find_misreports(
            mech, values, box, cfg.attack, [legacy_best_grid_bids(mech, values, grid)]
        )
        mech.train()
        alloc, pay = mech(values)
        truthful, _, _ = mechanisms.utilities(mech, values, values)
        rgt = torch.relu(deviation_utilities(mech, values, m) - truthful).mean(dim=0)
        loss = -pay.sum(dim=-1).mean() + (lam * rgt).sum() + rho / 2 * (rgt**2).sum()
        loss = loss + cfg.stability_weight * legacy_stability(layers, values, box)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % cfg.lambda_every == 0:
            lam = lam + rho * rgt.detach()
            rho += cfg.rho_increment


def dynamo_import_seconds() -> float:
    code = (
        "import time, torch; p = torch.nn.Parameter(torch.zeros(1)); t = time.perf_counter(); "
        "torch.optim.Adam([p]); print(time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"first torch.optim.Adam() in a fresh process: {dynamo_import_seconds():.2f} s")
    print(
        "| setting | trainer | profile-steps per wall s | ratio | profile-steps per CPU s | "
        "ratio | best round per CPU s | ratio | rounds |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.settings:
        agents, hidden, grid = SETTINGS[name]
        box = SupportBox(agents, 2)
        cfg = TrainConfig(
            steps=args.steps,
            batch_size=512,
            attack=AttackConfig(3, 0.05, 1),
            rho_increment=0.05,
            stability_weight=0.02,
            misreport_grid=grid,
        )
        rates: dict[str, list[float]] = {"previous": [], "today": []}
        cpu_rates: dict[str, list[float]] = {"previous": [], "today": []}
        for r in range(args.rounds + 1):  # round 0 warms both up (imports, allocator)
            for label in ("previous", "today"):
                mech = Mechanism(
                    MechanismConfig(agents, 2, hidden), generator=torch.Generator().manual_seed(0)
                )
                gen = torch.Generator().manual_seed(1)
                steps = 5 if r == 0 else args.steps
                run_cfg = TrainConfig(**{**_fields(cfg), "steps": steps})
                t, c = time.perf_counter(), time.process_time()
                if label == "previous":
                    with sorted_sparsemax():
                        legacy_train(mech, box, run_cfg, gen)
                else:
                    train_mechanism(mech, box, run_cfg, gen, log_every=10**9)
                secs, cpu = time.perf_counter() - t, time.process_time() - c
                if r > 0:
                    rates[label].append(steps * cfg.batch_size / secs)
                    cpu_rates[label].append(steps * cfg.batch_size / cpu)
        med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
        cpu = {k: sorted(v)[len(v) // 2] for k, v in cpu_rates.items()}
        best = {k: max(v) for k, v in cpu_rates.items()}
        for label in ("previous", "today"):
            print(
                f"| {name} | {label} | {med[label]:,.0f} | {med[label] / med['previous']:.2f} | "
                f"{cpu[label]:,.0f} | {cpu[label] / cpu['previous']:.2f} | "
                f"{best[label]:,.0f} | {best[label] / best['previous']:.2f} | "
                f"{len(rates[label])} |"
            )


def _fields(cfg: TrainConfig) -> dict:
    import attrs

    return attrs.asdict(cfg, recurse=False)


if __name__ == "__main__":
    main()
