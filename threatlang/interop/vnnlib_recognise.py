"""`import-vnnlib --recognise`: label_unchanged instances stated as the threat that generated
them, one spec over their centre points (an npz), certified by `ibp`.

The threat (linf ball or patch set) is recognised, then re-generated from the recognised spec
and compared box for box with the files, so an import either states exactly the same boxes or
refuses. Centres are computed in float64 and stored as float32 values inside the declared
input range: a pixel clipped at 0 stays at 0, never -1e-8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UsageError
from ..ir import AllLocations, Corners, Explicit, LpBall, Mask, PatchSet, Stride, ValueRange
from ..ir.shapes import Diamond, Line, Orientation, Rectangle, Square
from .boxes import ball_box, patch_boxes
from .vnnlib import Box
from .vnnlib_instances import Instance


def recognised_spec(
    instances: list[Instance], source: Path, name: str, model: str, data: Path
) -> tuple[str, dict[str, np.ndarray]]:
    """(spec text, npz arrays) stating `instances` as one threat over their centre points."""
    if any(i.label is None for i in instances):
        raise UsageError(
            "--recognise states label_unchanged properties; these instances have other output "
            "constraints (import them without --recognise)."
        )
    if len({i.onnx.resolve() for i in instances}) != 1:
        raise UsageError("--recognise imports one network at a time; these use several.")
    shape = instances[0].query.input_shape
    if len(shape) not in (1, 3):
        raise UsageError(
            f"--recognise writes npz data of images (C, H, W) or feature rows (F,); the "
            f"network's input is {shape}. Import without --recognise: one box spec per instance."
        )
    low, high = _range(instances)
    balls = (
        _balls(instances, low, high) if all(len(i.query.boxes) == 1 for i in instances) else None
    )
    if balls is not None:
        centres, radii = balls
        threat = LpBall("input", "linf", tuple(sorted(set(radii))))
        xs, ys = _group(centres, [i.label for i in instances], low, high)
        block = f"threat linf_ball {{ {_radius(threat.radii)} }}"
    else:
        groups = _examples(instances)  # one instance per placement (--split) or per example
        results = [recognise_patch(boxes, shape) for boxes, _ in groups]
        if len({repr(t) for _, t in results}) != 1:
            raise UsageError("the instances state different patch threats; import them apart.")
        xs, ys = [c for c, _ in results], [label for _, label in groups]
        block = _patch_text(results[0][1])
    x = np.stack([in_range_f32(c, low, high) for c in xs]).reshape(len(xs), *shape)
    y = np.asarray(ys, dtype=np.int64)
    dims = f"({', '.join(str(d) for d in shape)})" if len(shape) > 1 else str(shape[0])
    text = f"""threatlang 1

# Imported from {source.name}: {len(instances)} VNN-LIB properties, label_unchanged.
spec {name} {{
  model onnx("{model}")
  data npz {{ path "{data}" }}
  input {{
    shape {dims}
    range [{low!r}, {high!r}]
  }}
  {block}
  require label_unchanged
  certify ibp
}}
"""
    return text, {"x_train": x, "y_train": y, "x_test": x, "y_test": y}


def in_range_f32(values, low: float, high: float) -> np.ndarray:
    """`values` as float32, each inside [low, high] read as float64 (rounding to float32 may
    step outside by one ulp; we step back in)."""
    v = np.clip(np.asarray(values, dtype=np.float64), low, high).astype(np.float32)
    below = v.astype(np.float64) < low
    v[below] = np.nextafter(v[below], np.float32(np.inf))
    above = v.astype(np.float64) > high
    v[above] = np.nextafter(v[above], np.float32(-np.inf))
    return v


def _range(instances) -> tuple[float, float]:
    lo = min(float(b.lo.min()) for i in instances for b in i.query.boxes)
    hi = max(float(b.hi.max()) for i in instances for b in i.query.boxes)
    return lo, hi


def _tidy(v: float) -> float:
    return float(f"{v:.12g}")


def recognise_ball(box: Box, low: float, high: float) -> tuple[np.ndarray, float]:
    """(centre, radius) of a clipped linf ball equal to `box`, or `UsageError`."""
    eps = _tidy(float((box.hi - box.lo).max()) / 2)
    centre = np.where(
        box.lo <= low, box.hi - eps, np.where(box.hi >= high, box.lo + eps, (box.lo + box.hi) / 2)
    )
    centre = np.clip(centre, low, high)  # float64 round-off must not leave the range
    again = ball_box(in_range_f32(centre, low, high), eps, low, high)
    if not (np.allclose(again.lo, box.lo, atol=1e-7) and np.allclose(again.hi, box.hi, atol=1e-7)):
        raise UsageError("VNN-LIB: the input box is not an linf ball around one point.")
    return centre, eps


def _shape_of(mask: np.ndarray):
    h, w = mask.shape
    if mask.all():
        if h == w:
            return Square(h)
        if h == 1 or w == 1:
            return Line(max(h, w), Orientation.HORIZONTAL if h == 1 else Orientation.VERTICAL)
        return Rectangle(h, w)
    rows = tuple(tuple(bool(v) for v in row) for row in mask)
    candidates = [Line(h, o) for o in (Orientation.DIAGONAL, Orientation.ANTIDIAGONAL)]
    candidates.append(Diamond(int(mask.sum())))
    for shape in candidates:
        if shape.mask() == rows:
            return shape
    return Mask(rows)


def recognise_patch(boxes, shape) -> tuple[np.ndarray, PatchSet]:
    """(centre image, patch threat) whose boxes are exactly `boxes`, or `UsageError`."""
    c_h_w = shape if len(shape) == 3 else (1, *shape[-2:])
    lows = {float(v) for b in boxes for v in b.lo[b.lo != b.hi]}
    highs = {float(v) for b in boxes for v in b.hi[b.lo != b.hi]}
    if len(lows) != 1 or len(highs) != 1:
        raise UsageError("VNN-LIB: the boxes free pixels to different ranges; not one patch set.")
    values = ValueRange(lows.pop(), highs.pop())
    centre = np.full(int(np.prod(c_h_w)), np.nan)
    placements: dict = {}
    for b in boxes:
        fixed = b.lo == b.hi
        clash = fixed & ~np.isnan(centre) & (centre != b.lo)
        if clash.any():
            raise UsageError("VNN-LIB: the boxes do not share one centre image; not a patch set.")
        centre[fixed] = b.lo[fixed]
        free = (~fixed).reshape(c_h_w)
        if not (free == free[0]).all():
            raise UsageError("VNN-LIB: a patch must free every channel of its pixels.")
        rows, cols = np.flatnonzero(free[0].any(1)), np.flatnonzero(free[0].any(0))
        mask = free[0][rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        placements.setdefault(_shape_of(mask), set()).add((int(rows[0]), int(cols[0])))
    centre = np.where(np.isnan(centre), values.low, centre).reshape(c_h_w)
    shapes = tuple(placements)
    threat = None
    for loc in _location_candidates(c_h_w[-2:], placements):
        candidate = PatchSet(shapes, loc, values)
        if _same(patch_boxes(centre, candidate), boxes):
            threat = candidate
            break
    if threat is None:
        raise UsageError("VNN-LIB: these boxes are not the placements of one patch set.")
    return centre.reshape(shape), threat


def _location_candidates(hw, placements):
    yield AllLocations()
    yield Corners()
    for k in range(2, max(hw) + 1):
        yield Stride(k)
    points = {p for ps in placements.values() for p in ps}
    yield Explicit(tuple(sorted(points)))


def _same(a, b) -> bool:
    key = lambda box: (box.lo.tobytes(), box.hi.tobytes())  # noqa: E731
    return len(a) == len(b) and {key(x) for x in a} == {key(x) for x in b}


def _balls(instances, low, high):
    """(centres, radii) when every instance is one linf ball, else None."""
    try:
        pairs = [recognise_ball(i.query.boxes[0], low, high) for i in instances]
    except UsageError:
        return None
    return [c for c, _ in pairs], [e for _, e in pairs]


def _examples(instances) -> list[tuple[tuple[Box, ...], int]]:
    """Instances merged into examples: boxes with the same label whose pinned pixels agree
    wherever both pin them (the placements of one image's patch set)."""
    groups: list[tuple[list[Box], int, np.ndarray]] = []
    for inst in instances:
        for boxes, label, pinned in groups:
            if label != inst.label:
                continue
            if all(_agree(pinned, box) for box in inst.query.boxes):
                boxes.extend(inst.query.boxes)
                for box in inst.query.boxes:
                    _pin(pinned, box)
                break
        else:
            pinned = np.full(len(inst.query.boxes[0].lo), np.nan)
            for box in inst.query.boxes:
                _pin(pinned, box)
            groups.append((list(inst.query.boxes), inst.label, pinned))
    return [(tuple(boxes), label) for boxes, label, _ in groups]


def _agree(pinned: np.ndarray, box: Box) -> bool:
    fixed = (box.lo == box.hi) & ~np.isnan(pinned)
    return bool(np.array_equal(pinned[fixed], box.lo[fixed]))


def _pin(pinned: np.ndarray, box: Box) -> None:
    fixed = box.lo == box.hi
    pinned[fixed] = box.lo[fixed]


def _group(centres, labels, low: float, high: float):
    """Distinct (centre, label) examples in first-seen order (a ball file per radius repeats)."""
    xs, ys, seen = [], [], []
    for c, y in zip(centres, labels, strict=True):
        c = in_range_f32(c, low, high)  # the data's precision: equal up to round-off
        if any(np.array_equal(c, s) and y == sy for s, sy in seen):
            continue
        seen.append((c, y))
        xs.append(c)
        ys.append(y)
    return xs, ys


def _radius(radii) -> str:
    if len(radii) == 1:
        return f"radius {radii[0]!r}"
    return "radii [" + ", ".join(repr(r) for r in radii) + "]"


def _shape_text(shape) -> str:
    if isinstance(shape, Square):
        return f"square({shape.n})"
    if isinstance(shape, Rectangle):
        return f"rectangle({shape.height}, {shape.width})"
    if isinstance(shape, Line):
        return f"line({shape.n}, {shape.orientation.value})"
    if isinstance(shape, Diamond):
        return f"diamond({shape.pixels})"
    rows = ", ".join('"' + "".join("#" if v else "." for v in row) + '"' for row in shape.rows)
    return f"mask({rows})"


def _patch_text(threat: PatchSet) -> str:
    loc = threat.locations
    if isinstance(loc, AllLocations):
        where = "all"
    elif isinstance(loc, Corners):
        where = "corners"
    elif isinstance(loc, Stride):
        where = f"stride({loc.k})"
    else:
        where = "[" + ", ".join(f"({r}, {c})" for r, c in loc.points) + "]"
    shapes = "\n".join(f"    shape {_shape_text(s)}" for s in threat.shapes)
    v = threat.values
    return (
        f"threat patch {{\n{shapes}\n    locations {where}\n"
        f"    values [{v.low!r}, {v.high!r}]\n  }}"
    )
