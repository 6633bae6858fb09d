"""Effect of the ReLU-stability regulariser (§4.3.3) on certification: same seed, same profiles,
trained with weight 0 and with weight w; certified with Gurobi (fallback HiGHS) and linear bounds.

    python benchmarks/bench_mip_stability.py --profiles 6 --train-steps 300 --weight 0.02
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from bench_mip import SETTINGS, trained  # noqa: E402

from threatlang.backends.mip.certify import CertifyConfig, certify_agent  # noqa: E402
from threatlang.backends.mip.mechanisms import PaymentKind  # noqa: E402
from threatlang.backends.mip.solvers.gurobi import licence_is_limited  # noqa: E402
from threatlang.backends.mip.valuations import SupportBox, sample_profiles  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=6)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--weight", type=float, default=0.02)
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS))
    parser.add_argument("--payments", nargs="+", default=["free", "fractional"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    limited = licence_is_limited()
    print(
        "| setting | payment | stability | mean s | median s | p95 s | unknown | unstable ReLUs | certified regret | mean / (no reg.) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.settings:
        agents, items, hidden = SETTINGS[name]
        values = sample_profiles(
            SupportBox(agents, items),
            args.profiles,
            torch.Generator().manual_seed(7),
            dtype=torch.float64,
        )
        for payment in args.payments:
            base = None
            for weight in (0.0, args.weight):
                mech = trained(
                    agents, items, hidden, PaymentKind(payment), args.train_steps, 0, weight
                )
                mech.clip_payments = payment == "free"
                cfg = CertifyConfig(time_limit=args.time_limit)
                certs = [
                    certify_agent(mech, values[k].numpy(), a, 0.0, 1.0, cfg, limited)
                    for k in range(args.profiles)
                    for a in range(agents)
                ]
                secs = np.array([c.seconds for c in certs])
                proven = [c.certified_regret for c in certs if c.certified_regret is not None]
                base = secs.mean() if base is None else base
                print(
                    f"| {name} | {payment} | {weight:g} | {secs.mean():.3f} | {np.median(secs):.3f} | "
                    f"{np.percentile(secs, 95):.3f} | {len(certs) - len(proven)}/{len(certs)} | "
                    f"{np.mean([c.stats['unstable_relus'] for c in certs]):.1f} | "
                    f"{np.mean(proven) if proven else float('nan'):.4f} | {secs.mean() / base:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
