"""Algorithm 2's regular steps on X only (the chapter) vs on X plus the trigger set (the
reference code's variant), side by side in one run: the shipped spec with `regular_data`
switched, same seed, same trigger set, same noise draws. Reports test accuracy, black-box
trigger accuracy, the smoothed median and the certified trigger accuracy at every radius.

    python benchmarks/bench_watermark_regular.py [--spec specs/watermark.threat] [--epochs N]
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from pathlib import Path

import threatlang


def _variant(text: str, regular: str, epochs: int | None) -> str:
    options = f"\n    regular_data {regular}\n    baseline false"
    text = re.sub(r"(train watermark \{)", rf"\1{options}", text, count=1)
    text = re.sub(r"\n\s*attack [^{]*\{[^}]*\}", "", text)  # certification only
    if epochs is not None:
        text = re.sub(r"(train watermark \{[^}]*?)epochs \d+", rf"\1epochs {epochs}", text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--spec", default="specs/watermark.threat")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    text = Path(args.spec).read_text()
    print(
        "| regular steps on | test acc | BB trigger | smoothed median | certified per radius | s |"
    )
    print("|---|---|---|---|---|---|")
    for regular in ("train", "train_and_trigger"):
        spec = threatlang.parse(_variant(text, regular, args.epochs))
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            m = threatlang.run(spec, output=out, quiet=True).summary.metrics
            seconds = time.perf_counter() - start
        cert = " / ".join(
            "—" if v is None else f"{100 * v:.1f}%"
            for v in m["certified_trigger_accuracy"].values()
        )
        label = "X (Algorithm 2)" if regular == "train" else "X + trigger set"
        print(
            f"| {label} | {100 * m['test_accuracy']:.1f}% | {100 * m['trigger_accuracy']:.1f}% | "
            f"{100 * m['smoothed_trigger_accuracy']:.1f}% | {cert} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
