"""Hostile sizes and numbers in a spec (issue 15): each is refused by `threatlang check` with one
positioned sentence and exit code 2, quickly.

Every case runs the real CLI in a subprocess under a wall-clock timeout, so a case that hangs or
balloons (as `square(10^30)`, 1.1 M explicit locations or a 5,000-digit `epochs` once did) fails
by timing out instead of stalling the suite. No timing is asserted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from threatlang.ir.shapes import Diamond, Line, Mask, Orientation, Parallelogram, Rectangle, Square
from threatlang.ir.threats import AllLocations, Corners, Stride

ROOT = Path(__file__).parents[2]
BASE = (ROOT / "specs" / "quickstart.threat").read_text()
WALL_SECONDS = 30  # the old behaviour ran for minutes; the refusals take about a second

BIG_INPUT = BASE.replace(
    "  data digits {", "  input { shape (1, 20000, 20000) }\n  data npz {"
).replace("    test_limit 300\n", '    path "x.npz"\n')
NO_SHAPE = BASE.replace("  data digits {", "  data npz {").replace(
    "    test_limit 300\n", '    path "x.npz"\n'
)


def _million_locations() -> str:
    """1.1 M explicit locations (9 MB of source), built only when its case runs."""
    points = ", ".join(f"({i % 7}, {i % 7})" for i in range(1_100_000))
    return BASE.replace("locations all", f"locations [{points}]")


# (id, source, text whose first occurrence is the reported position, words of the message)
CASES = [
    ("square-1e30", BASE.replace("square(2)", f"square(1{'0' * 30})"), "1000", "64-bit range"),
    ("square-1e18", BASE.replace("square(2)", f"square(1{'0' * 18})"), "square(", "larger than"),
    ("square-1e6", BASE.replace("square(2)", "square(1000000)"), "square(", "larger than the 8x8"),
    ("square-1e4", BASE.replace("square(2)", "square(10000)"), "square(", "larger than the 8x8"),
    ("diamond-1e18", BASE.replace("square(2)", f"diamond(1{'0' * 18})"), "diamond(", "larger"),
    (
        "line-1e18",
        BASE.replace("square(2)", f"line(1{'0' * 18}, antidiagonal)"),
        "line(",
        "larger than",
    ),
    ("mask-cells", NO_SHAPE.replace("square(2)", "square(100000)"), "square(", "a mask holds"),
    (
        "placements",
        BIG_INPUT.replace("square(2)", "square(2)\n    shape line(3)"),
        "all\n",
        "placements per image",
    ),
    (
        "locations-1.1M",
        _million_locations,
        "[(0, 0)",
        "more than 200000 items",
    ),
    (
        "locations-leave",
        BASE.replace("locations all", "locations [(0, 0), (7, 7), (9, 1)]"),
        "[(0, 0)",
        "at (7, 7) leaves the 8x8 input (and 1 more location)",
    ),
    ("epochs-5000-digits", BASE.replace("epochs 20", f"epochs 1{'0' * 5000}"), "1000", "too long"),
    ("epochs-1e30", BASE.replace("epochs 20", f"epochs 1{'0' * 30}"), "1000", "64-bit range"),
    ("option-1e20", BASE.replace("steps 20", f"steps 1{'0' * 20}"), "1000", "64-bit range"),
    ("seed-negative", BASE.replace("seed 0", "seed -1"), "-1", "seed must lie in 0..4294967295"),
    ("seed-1e23", BASE.replace("seed 0", f"seed 1{'0' * 23}"), "1000", "seed must lie in 0.."),
    ("zero-over-zero", BASE.replace("lr 0.002", "lr 0/0"), "0/0", "0/0 divides by zero"),
    ("one-over-zero", BASE.replace("lr 0.002", "lr 1/0"), "1/0", "1/0 divides by zero"),
    ("fraction-overflow", BASE.replace("lr 0.002", "lr 1e300/1e-300"), "1e300", "largest number"),
    ("values-1e999", BASE.replace("values [0, 1]", "values [0, 1e999]"), "1e999", "largest number"),
]


def _position(text: str, needle: str) -> tuple[int, int]:
    at = text.index(needle)
    return text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)


@pytest.mark.parametrize("source,needle,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_with_one_positioned_sentence(tmp_path, source, needle, message):
    source = source() if callable(source) else source
    path = tmp_path / "hostile.threat"
    path.write_text(source)
    proc = subprocess.run(
        [sys.executable, "-m", "threatlang", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=WALL_SECONDS,
    )
    line, column = _position(source, needle)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    first = proc.stderr.splitlines()[0]
    assert first.startswith(f"{path}:{line}:{column}: error: "), first[:300]
    assert message in first
    assert proc.stderr.count(": error: ") == 1 and proc.stderr.rstrip().endswith("1 error")
    assert len(proc.stderr) < 2000  # the echoed line is clipped, the message is one sentence


def _drawn(shape) -> tuple[tuple[int, int], int]:
    rows = shape.mask()
    return (len(rows), len(rows[0])), sum(map(sum, rows))


@pytest.mark.parametrize("pixels", range(1, 300))
def test_diamond_size_by_arithmetic_matches_its_mask(pixels):
    shape = Diamond(pixels)
    assert _drawn(shape) == (shape.size(), shape.area())


def test_other_shapes_size_by_arithmetic_match_their_masks():
    shapes = [Square(n) for n in range(1, 6)]
    shapes += [Rectangle(h, w) for h in range(1, 5) for w in range(1, 5)]
    shapes += [Line(n, o) for n in range(1, 6) for o in Orientation]
    shapes += [Parallelogram(h, w, s) for h in range(1, 5) for w in range(1, 4) for s in range(3)]
    shapes += [Mask(("#..", ".#.")), Mask(("##",))]
    for shape in shapes:
        assert _drawn(shape) == (shape.size(), shape.area()), shape


@pytest.mark.parametrize("locations", [AllLocations(), Corners(), Stride(1), Stride(3)])
def test_placement_counts_by_arithmetic_match_the_enumeration(locations):
    for patch in [(1, 1), (2, 3), (5, 5), (8, 8), (8, 1)]:
        for image in [(8, 8), (9, 13), (28, 28)]:
            assert locations.count(patch, image) == len(locations.positions(patch, image))


@pytest.mark.parametrize("seed", ["-1", f"1{'0' * 23}"])
def test_a_seed_flag_out_of_range_is_refused_before_anything_runs(tmp_path, seed):
    """`--seed` bypasses the spec's own check; the API refuses it with one sentence."""
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "threatlang", "run", str(ROOT / "specs" / "quickstart.threat")]
        + ["-o", str(out), "--seed", seed],
        capture_output=True,
        text=True,
        timeout=WALL_SECONDS,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        == f"error: the seed must be a whole number in 0..4294967295, got {seed}."
    )
    assert not out.exists()
