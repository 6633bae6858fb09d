"""`threatlang import-vnnlib`: VNN-COMP instances (an ONNX model and `X_i`/`Y_j` properties)
become `.threat` specs.

Properties whose output constraint is label_unchanged around data points become one spec over
those points: the threat (linf ball or patch set) is recognised, then re-generated from the
recognised spec and compared box for box with the file, so an import either states exactly the
same boxes or refuses. Any other linear output constraint (e.g. ACAS Xu's disjunctions) becomes
one spec per instance: `threat box { ... }`, `require outputs { ... }` (the negation of the
file's unsafe set) and `certify bab` with the instance's time-out.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import attrs
import numpy as np

from ..errors import UsageError
from ..ir import AllLocations, Corners, Explicit, LpBall, Mask, PatchSet, Stride, ValueRange
from ..ir.shapes import Diamond, Line, Orientation, Rectangle, Square
from .boxes import ball_box, patch_boxes
from .vnnlib import Box, Query, unsafe_label
from .vnnlib_props import outputs_text, safe_formula
from .vnnlib_read import read

DEFAULT_TIMEOUT = 60.0


@attrs.frozen(eq=False)
class Instance:
    onnx: Path
    query: Query
    label: int | None  # the label of a label_unchanged property, else None
    vnnlib: Path | None = None
    timeout: float = DEFAULT_TIMEOUT


def read_instances(path: str | Path, onnx: str | Path | None = None) -> list[Instance]:
    """Instances from an instances.csv (paths relative to it) or one .vnnlib with `onnx`."""
    path = Path(path)
    if path.suffix == ".csv":
        if not path.exists():
            raise UsageError(f"instances file {path} not found.")
        rows = [r for r in csv.reader(path.read_text().splitlines()) if r and r[0].strip()]
        if any(len(r) < 2 for r in rows):
            raise UsageError(f"{path}: each line needs onnx,vnnlib[,timeout].")
        triples = [
            (path.parent / r[0].strip(), path.parent / r[1].strip(), _timeout(r, path))
            for r in rows
        ]
    else:
        if onnx is None:
            raise UsageError(f"{path} needs its network: pass --onnx MODEL.onnx.")
        triples = [(Path(onnx), path, DEFAULT_TIMEOUT)]
    out = []
    for model, prop, timeout in triples:
        text = _read_text(prop)
        try:
            query = read(text, _onnx_input_shape(model))
        except UsageError as err:
            raise UsageError(f"{prop}: {err}") from None
        out.append(Instance(model, query, unsafe_label(query), prop, timeout))
    if not out:
        raise UsageError(f"{path} lists no instances.")
    return out


def _timeout(row: list[str], path: Path) -> float:
    if len(row) < 3 or not row[2].strip():
        return DEFAULT_TIMEOUT
    try:
        value = float(row[2])
    except ValueError:
        raise UsageError(f"{path}: the timeout {row[2].strip()!r} is not a number.") from None
    if not value > 0:
        raise UsageError(f"{path}: the timeout {row[2].strip()!r} must be positive.")
    return value


def _read_text(path: Path) -> str:
    if not path.exists():
        raise UsageError(f"VNN-LIB file {path} not found.")
    if path.suffix == ".gz":
        import gzip

        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def _onnx_input_shape(path: Path) -> tuple[int, ...]:
    import onnx

    if not path.exists():
        raise UsageError(f"ONNX model {path} not found.")
    graph = onnx.load(str(path)).graph
    init = {t.name for t in graph.initializer}
    dims = [
        d.dim_value
        for d in next(i for i in graph.input if i.name not in init).type.tensor_type.shape.dim
    ]
    return tuple(dims[1:]) if len(dims) > 1 and dims[0] in (0, 1) else tuple(dims)


# ------------------------------------------------------------------------ threat recognition
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
    again = ball_box(centre.astype(np.float32), eps, low, high)
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


# ------------------------------------------------------------------------------ spec writing
def import_vnnlib(
    path: str | Path, output: str | Path, *, onnx: str | Path | None = None, name: str | None = None
) -> Path:
    """Write OUTPUT (.threat) and OUTPUT.npz (the centre images and labels) for the instances."""
    instances = read_instances(path, onnx)
    models = {i.onnx.resolve() for i in instances}
    if len(models) != 1:
        raise UsageError("the instances use several networks; import one network at a time.")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if any(i.label is None for i in instances):
        return _import_general(instances, path, output, name, next(iter(models)))
    shape = instances[0].query.input_shape
    low, high = _range(instances)
    name = name or output.stem.replace("-", "_")
    balls = (
        _balls(instances, low, high) if all(len(i.query.boxes) == 1 for i in instances) else None
    )
    if balls is not None:
        centres, radii = balls
        threat = LpBall("input", "linf", tuple(sorted(set(radii))))
        xs, ys = _group(centres, [i.label for i in instances])
        block = f"threat linf_ball {{ {_radius(threat.radii)} }}"
    else:
        groups = _examples(instances)  # one instance per placement (--split) or per example
        results = [recognise_patch(boxes, shape) for boxes, _ in groups]
        threats = {repr(t) for _, t in results}
        if len(threats) != 1:
            raise UsageError("the instances state different patch threats; import them apart.")
        threat = results[0][1]
        xs, ys = [c for c, _ in results], [label for _, label in groups]
        block = _patch_text(threat)
    data = output.with_suffix(".npz")
    x = np.stack(xs).astype(np.float32).reshape(len(xs), *shape)
    y = np.asarray(ys, dtype=np.int64)
    np.savez(data, x_train=x, y_train=y, x_test=x, y_test=y)
    model = os.path.relpath(next(iter(models)), output.parent.resolve())
    dims = f"({', '.join(str(d) for d in shape)})" if len(shape) > 1 else str(shape[0])
    text = f"""threatlang 1

# Imported from {Path(path).name}: {len(instances)} VNN-LIB properties, label_unchanged.
spec {name} {{
  model onnx("{model}")
  data npz {{ path "{data.resolve()}" }}
  input {{
    shape {dims}
    range [{low!r}, {high!r}]
  }}
  {block}
  require label_unchanged
  certify ibp
}}
"""
    output.write_text(text)
    return output


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


def _group(centres, labels):
    """Distinct (centre, label) examples in first-seen order (a ball file per radius repeats)."""
    xs, ys, seen = [], [], []
    for c, y in zip(centres, labels, strict=True):
        c = np.asarray(c, dtype=np.float32)  # the data's precision: equal up to round-off
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


# ------------------------------------------------------------------ general linear properties
def _import_general(instances, source, output: Path, name: str | None, model: Path) -> Path:
    """One spec per instance (and per input box of it): box threat, outputs formula, bab."""
    base = _identifier(name or output.stem)
    rel = os.path.relpath(model, output.parent.resolve())
    specs, used = [], set()
    for k, inst in enumerate(instances):
        q = inst.query
        formula = safe_formula(q.unsafe)
        stem = _identifier(inst.vnnlib.stem if inst.vnnlib is not None else str(k))
        for b, box in enumerate(q.boxes):
            if not (np.isfinite(box.lo).all() and np.isfinite(box.hi).all()):
                raise UsageError(f"{inst.vnnlib}: an input is unbounded; a box needs both bounds.")
            spec_name = f"{base}_{stem}" + (f"_box{b}" if len(q.boxes) > 1 else "")
            while spec_name in used:
                spec_name += "_"
            used.add(spec_name)
            specs.append(_box_spec(spec_name, rel, q, box, formula, inst.timeout))
    note = f"# Imported from {Path(source).name}: {len(instances)} VNN-LIB properties."
    output.write_text("threatlang 1\n\n" + note + "\n" + "\n".join(specs))
    return output


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return out if out and not out[0].isdigit() else f"p_{out}"


def _floats(values) -> str:
    return "[" + ", ".join(repr(float(v) + 0.0) for v in values) + "]"


def _box_spec(name: str, model: str, query: Query, box: Box, formula, timeout: float) -> str:
    shape = query.input_shape
    domain = ""
    if len(shape) > 1:
        lo, hi = float(box.lo.min()), float(box.hi.max())
        hi = hi if hi > lo else lo + 1.0
        dims = ", ".join(str(d) for d in shape)
        domain = f"  input {{\n    shape ({dims})\n    range [{lo!r}, {hi!r}]\n  }}\n"
    return f"""spec {name} {{
  model onnx("{model}")
{domain}  threat box {{
    lower {_floats(box.lo)}
    upper {_floats(box.hi)}
  }}
  {outputs_text(formula)}
  certify bab {{ time_limit {timeout!r}s }}
}}
"""
