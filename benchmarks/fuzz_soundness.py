"""Outcome counts of the soundness fuzzer (tests/soundness), for BENCHMARKS.md.

Runs exactly the modules the test runs (the same derandomized hypothesis draws, issue 19's
cases first) and, instead of stopping at the first failure, counts every item: certified
and unbroken / broken / unknown (by reason) / falsified / refused / crashed, per construct.

    OMP_NUM_THREADS=1 python benchmarks/fuzz_soundness.py          # the default (fast) slice
    OMP_NUM_THREADS=1 python benchmarks/fuzz_soundness.py --slow   # the large slice
    ... --broken 20   # also print up to 20 failing items
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from tests.soundness import test_fuzz  # noqa: E402
from tests.soundness.harness import (  # noqa: E402
    CONFIGS,
    FAILURES,
    FAST_CONFIGS,
    Kind,
    Tally,
    certify_and_attack,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", action="store_true", help="the large slice (marked slow)")
    parser.add_argument("--broken", type=int, default=0, help="print this many failing items")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    test = test_fuzz.test_nothing_certified_breaks_large if args.slow else (
        test_fuzz.test_nothing_certified_breaks
    )  # fmt: skip
    threats = test_fuzz.SLOW_THREATS if args.slow else test_fuzz.DEFAULT_THREATS
    configs = CONFIGS if args.slow else FAST_CONFIGS
    tally = Tally()

    # the same draws as the test (hypothesis seeds them from the original test function);
    # only what runs on each draw is swapped: count instead of assert
    def count(bp) -> None:
        tally.add(certify_and_attack(bp, threats, configs))
        kinds = ", ".join(f"{k.value} {n}" for k, n in sorted(tally.kinds.items(), key=str))
        print(f"[{tally.modules}] {bp.describe()}: so far {kinds}", flush=True)

    test.hypothesis.inner_test = count
    start, cpu = time.perf_counter(), time.process_time()
    test()
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(f"soundness fuzzer, {'large' if args.slow else 'default'} slice: "
          f"{tally.modules} modules in {seconds:.0f} s wall, {cpu:.0f} s CPU")  # fmt: skip
    for line in tally.lines():
        print("  " + line)
    print("unknown / refused / crashed, by reason:")
    for (kind, reason), n in tally.reasons.most_common(15):
        print(f"  {n:5d}  {kind}: {reason}")
    print("per construct (modules using it): " + ", ".join(k.value for k in FAILURES[:2]))
    for name, counts in sorted(tally.by_construct.items()):
        broken = counts.get(Kind.BROKEN, 0)
        crashed = counts.get(Kind.CRASHED, 0)
        certified = counts.get(Kind.CERTIFIED, 0)
        print(f"  {name:26s} certified {certified:4d}  broken {broken:4d}  crashed {crashed:4d}")
    for o in tally.failures[: args.broken]:
        print("  " + str(o))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
