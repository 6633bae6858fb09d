"""Language-core speed: import cost and parse+check time of a 2,000-line spec file.

Run: python benchmarks/bench_core.py
Shows with `python -X importtime` that `import threatlang` and `threatlang check` load no torch or
solver, and measures parse+check of a generated 2,000-line file (median of repeats).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
HEAVY = (
    "torch",
    "gurobipy",
    "highspy",
    "pyscipopt",
    "ray",
    "onnx",
    "sklearn",
    "matplotlib",
    "numpy",
)


def importtime(code: str) -> tuple[float, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True, check=True
    )
    modules, total = [], 0.0
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, raw = line[len("import time:") :].split("|")
        name = raw.strip()
        modules.append(name)
        if not raw[1:].startswith(" "):  # only top-level imports (no extra indent) add up
            total += int(cumulative) / 1e6
    return total, modules


def big_spec(lines: int) -> str:
    block = (ROOT / "specs/quickstart.threat").read_text().split("spec quickstart", 1)[1]
    per = block.count("\n") + 1
    parts = ["threatlang 1\n"]
    for i in range(lines // per + 1):
        parts.append(f"spec quickstart_{i}" + block)
    return "".join(parts)


def main() -> None:
    for label, code in [
        ("import threatlang", "import threatlang"),
        (
            "threatlang check specs/",
            f"import threatlang.cli as c; c.main(['check', '-q', {str(ROOT / 'specs')!r}])",
        ),
    ]:
        total, modules = importtime(code)
        heavy = sorted({m.split(".")[0] for m in modules if m.split(".")[0] in HEAVY})
        print(
            f"{label}: {total * 1000:.0f} ms of imports; heavy modules imported: {heavy or 'none'}"
        )

    import threatlang

    text = big_spec(2000)
    n_lines = text.count("\n")
    threatlang.parse_all(
        "spec warm { model mlp_small\n data digits\n train standard }\n"
    )  # build the parser once
    from threatlang.compile import capable_backend

    times, with_backends = [], []
    for _ in range(7):
        start = time.perf_counter()
        specs = threatlang.parse_all(text, file="big.threat")
        times.append(time.perf_counter() - start)
        for spec in specs:
            capable_backend(spec)
        with_backends.append(time.perf_counter() - start)
    print(
        f"parse+check of {n_lines} lines ({len(specs)} specs): median {statistics.median(times) * 1000:.0f} ms "
        f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}); with backend option checks: "
        f"median {statistics.median(with_backends) * 1000:.0f} ms"
    )
    for label, code in [
        ("python -c pass", "pass"),
        ("python -c 'import threatlang'", "import threatlang"),
    ]:
        start = time.perf_counter()
        for _ in range(3):
            subprocess.run([sys.executable, "-c", code], check=True)
        print(f"{label}: {(time.perf_counter() - start) / 3 * 1000:.0f} ms per process")
    with tempfile.NamedTemporaryFile("w", suffix=".threat", delete=False) as fh:
        fh.write(text)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "threatlang", "check", "-q", fh.name], check=True)
    print(
        f"`threatlang check` of that file, whole process: {(time.perf_counter() - start) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
