"""Clean accuracy, corruption accuracy and mCE of specs/vit_upat.threat over several seeds.

One seed on 449 test digits moves accuracy by a point or two; this runs the spec once per seed
(each run trains every method side by side) and reports mean and standard deviation.

    python benchmarks/bench_advtrain_accuracy.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import threatlang


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="specs/vit_upat.threat")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--json", help="also write the per-seed figures here")
    args = ap.parse_args()
    spec = threatlang.load(args.spec)
    per_seed = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as out:
            threatlang.run(spec, output=out, quiet=True, seed=seed)
            per_seed[seed] = json.loads((Path(out) / "summary.json").read_text())["methods"]
    keys = ("clean_accuracy", "corruption_accuracy", "mce", "cost_ratio")
    print(f"{args.spec}, seeds {args.seeds} (mean ± std)")
    print("| method | clean | corrupted | mCE | time vs standard |")
    print("|---|---|---|---|---|")
    for method in per_seed[args.seeds[0]]:
        cells = []
        for key in keys:
            vals = [per_seed[s][method][key] for s in args.seeds]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            mean = statistics.mean(vals)
            cells.append(
                f"{mean:.2f}x ± {sd:.2f}" if key == "cost_ratio" else f"{mean:.1%} ± {sd:.1%}"
            )
        print(f"| {method} | " + " | ".join(cells) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps(per_seed, indent=2))


if __name__ == "__main__":
    main()
