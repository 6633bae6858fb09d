"""Lowering of `threat KIND { ... }` blocks and `require PROPERTY` statements."""

from __future__ import annotations

from ..ir import (
    AccuracyAtLeast,
    AllLocations,
    BidSupport,
    Corners,
    Explicit,
    IoUAtLeast,
    LabelUnchanged,
    LpBall,
    Norm,
    OutputBounds,
    PatchSet,
    Pyramid,
    RegretAtMost,
    Stride,
    Target,
    ValueRange,
)
from ..ir.shapes import SHAPES, Diamond, Line, Mask, Orientation, Parallelogram, Rectangle, Square
from ..ir.threats import BoxUnion, InputBox
from ..syntax import Call, ListV, Name, Stmt, TupleV, describe
from .formulas import lower_outputs
from .reader import BAD, Block, Diagnostics, Values, build, call_args, choices

THREAT_KINDS = ("patch", "l2_ball", "linf_ball", "bid_support", "pyramid", "box", "boxes")
SHAPE_USAGE = {
    "square": "square(n)",
    "rectangle": "rectangle(height, width)",
    "line": "line(n) or line(n, horizontal|vertical|diagonal|antidiagonal)",
    "diamond": "diamond(pixels)",
    "parallelogram": "parallelogram(height, width) or parallelogram(height, width, shift)",
    "mask": 'mask("##.", ".##") with # for patch pixels',
}


def lower_threat(stmt: Stmt, diags: Diagnostics) -> object:
    values = Values(diags)
    kind = values.word(stmt.value, "threat kind", stmt.key_span, THREAT_KINDS)
    if kind is BAD:
        return BAD
    block = Block(stmt.block, f"threat {kind}", diags)
    lowerers = {
        "patch": _patch,
        "l2_ball": _ball,
        "linf_ball": _ball,
        "bid_support": _bids,
        "pyramid": _pyramid,
        "box": _box,
        "boxes": _boxes,
    }
    return lowerers[kind](kind, stmt, block, values, diags)


def _patch(kind, stmt, block: Block, values: Values, diags):
    shape_stmts = block.take_all("shape")
    many = block.take("shapes")
    shapes = []
    for s in shape_stmts:
        shapes.append(_shape(s.value, s, values, diags))
    if many is not None:
        items = values.sequence(many.value, "shapes", many.span)
        if items is not BAD:
            shapes.extend(_shape(v, many, values, diags) for v in items)
    if not shape_stmts and many is None:
        diags.error(stmt.span, "a patch threat needs at least one `shape`", "e.g. shape square(2)")
        shapes.append(BAD)
    loc_stmt = block.take("locations")
    locations = (
        AllLocations(span=stmt.span) if loc_stmt is None else _locations(loc_stmt, values, diags)
    )
    val_stmt = block.take("values")
    value_range: object = ValueRange(0.0, 1.0, span=stmt.span)
    if val_stmt is not None:
        pair = values.pair(val_stmt.value, "values", val_stmt.span, values.real)
        value_range = (
            BAD
            if pair is BAD
            else build(diags, ValueRange, val_stmt.span, {}, low=pair[0], high=pair[1])
        )
    block.reject_rest(["shape", "shapes", "locations", "values"])
    if BAD in shapes:
        return BAD
    return build(
        diags,
        PatchSet,
        stmt.span,
        {},
        shapes=tuple(shapes),
        locations=locations,
        values=value_range,
    )


def _shape(v, stmt: Stmt, values: Values, diags: Diagnostics):
    name = v.name if isinstance(v, Call) else v.text if isinstance(v, Name) else None
    if name not in SHAPES:
        what = (
            f"unknown shape '{name}'"
            if name
            else f"a shape is a call like square(2), got {describe(v)}"
        )
        return diags.error(
            v.span if v is not None else stmt.span, what, choices(SHAPE_USAGE.values())
        )
    if not isinstance(v, Call):
        return diags.error(v.span, f"shape {name} needs arguments", SHAPE_USAGE[name])
    usage = SHAPE_USAGE[name]
    if name == "mask":
        rows = [values.string(a, "a mask row", v.span) for a in v.args]
        if not rows:
            return diags.error(v.span, "mask needs at least one row", usage)
        bad = [r for r in rows if r is not BAD and set(r) - {"#", "."}]
        if bad:
            return diags.error(v.span, f"mask rows use only '#' and '.', got {bad[0]!r}", usage)
        return BAD if BAD in rows else build(diags, Mask, v.span, {}, rows=tuple(rows))
    arity = {
        "square": (1, 1),
        "rectangle": (2, 2),
        "line": (1, 2),
        "diamond": (1, 1),
        "parallelogram": (2, 3),
    }[name]
    args = call_args(diags, v, arity, usage)
    if args is BAD:
        return BAD
    if name == "line":
        n = values.integer(args[0], "line length", v.span)
        orient = (
            values.enum(args[1], Orientation, "line orientation", v.span)
            if len(args) > 1
            else Orientation.HORIZONTAL
        )
        return build(diags, Line, v.span, {}, n=n, orientation=orient)
    ints = [values.integer(a, f"{name} size", v.span) for a in args]
    cls = {
        "square": Square,
        "rectangle": Rectangle,
        "diamond": Diamond,
        "parallelogram": Parallelogram,
    }[name]
    fields = {
        "square": ["n"],
        "rectangle": ["height", "width"],
        "diamond": ["pixels"],
        "parallelogram": ["height", "width", "shift"],
    }[name]
    return build(diags, cls, v.span, {}, **dict(zip(fields, ints, strict=False)))


def _locations(stmt: Stmt, values: Values, diags: Diagnostics):
    v = stmt.value
    usage = "all, corners, stride(k) or a list of (row, column) positions"
    if isinstance(v, Name) and v.text == "all":
        return AllLocations(span=v.span)
    if isinstance(v, Name) and v.text == "corners":
        return Corners(span=v.span)
    if isinstance(v, Call) and v.name == "stride":
        args = call_args(diags, v, (1, 1), "stride(k)")
        k = BAD if args is BAD else values.integer(args[0], "stride", v.span)
        return build(diags, Stride, v.span, {}, k=k)
    if isinstance(v, ListV):
        points = []
        for item in v.items:
            if not isinstance(item, TupleV) or len(item.items) != 2:
                return diags.error(item.span, "a location is a (row, column) pair", usage)
            points.append(tuple(values.integer(x, "location", item.span) for x in item.items))
        if any(BAD in p for p in points):
            return BAD
        return build(diags, Explicit, v.span, {"points": v.span}, points=tuple(points))
    where = v.span if v is not None else stmt.span
    return diags.error(where, f"unknown locations {describe(v)}", usage)


def _ball(kind, stmt, block: Block, values: Values, diags):
    around = block.take("around")
    target = (
        Target.INPUT
        if around is None
        else values.enum(around.value, Target, "ball centre", around.span)
    )
    radius, radii = block.take("radius"), block.take("radii")
    spans = {}
    if radius is not None and radii is not None:
        diags.error(radii.key_span, "give either `radius` or `radii`, not both")
        value = BAD
    elif radius is not None:
        value = values.many(radius.value, "radius", radius.span, values.real)
        spans["radii"] = radius.span
    elif radii is not None:
        value = values.many(radii.value, "radii", radii.span, values.real)
        spans["radii"] = radii.span
    else:
        value = diags.error(
            stmt.span, f"{kind} needs a `radius`", "e.g. radius 0.36 or radii [0.5, 1.0]"
        )
    block.reject_rest(["around", "radius", "radii"])
    norm = Norm.L2 if kind == "l2_ball" else Norm.LINF
    return build(diags, LpBall, stmt.span, spans, target=target, norm=norm, radii=value)


def _bids(kind, stmt, block: Block, values: Values, diags):
    spans, kwargs = {}, {}
    for key in ("agents", "items"):
        s = block.take(key)
        if s is None:
            kwargs[key] = diags.error(stmt.span, f"bid_support needs `{key}`", f"e.g. {key} 2")
        else:
            kwargs[key] = values.integer(s.value, key, s.span)
            spans[key] = s.span
    vals = block.take("valuations")
    if vals is not None:
        pair = values.pair(vals.value, "valuations", vals.span, values.real)
        kwargs["low"], kwargs["high"] = (BAD, BAD) if pair is BAD else pair
        spans["valuations"] = vals.span
    mis = block.take("misreport")
    if mis is not None:
        spans["misreport"] = mis.span
        if isinstance(mis.value, Name) and mis.value.text == "all":
            kwargs["agent"] = None
        else:
            kwargs["agent"] = values.integer(mis.value, "misreporting agent (or all)", mis.span)
    block.reject_rest(["agents", "items", "valuations", "misreport"])
    return build(diags, BidSupport, stmt.span, spans, **kwargs)


def _pyramid(kind, stmt, block: Block, values: Values, diags):
    spans, kwargs = {}, {}
    readers = {
        "scales": lambda s: values.many(s.value, "scales", s.span, values.integer),
        "multipliers": lambda s: values.many(s.value, "multipliers", s.span, values.real),
        "radius": lambda s: values.real(s.value, "radius", s.span),
        "universal": lambda s: values.boolean(s.value, "universal", s.span),
    }
    for key, read in readers.items():
        s = block.take(key)
        if s is not None:
            kwargs[key] = read(s)
            spans[key] = s.span
        elif key != "universal":
            kwargs[key] = diags.error(stmt.span, f"pyramid needs `{key}`")
    block.reject_rest(list(readers))
    return build(diags, Pyramid, stmt.span, spans, **kwargs)


BOX_USAGE = "lower [...] and upper [...], or bounds [(low, high), ...], one per input dimension"


def _box(kind, stmt, block: Block, values: Values, diags):
    """`threat box { lower [...]; upper [...] }` or `threat box { bounds [(lo, hi), ...] }`."""
    lower, upper, bounds = block.take("lower"), block.take("upper"), block.take("bounds")
    block.reject_rest(["lower", "upper", "bounds"])
    spans = {}
    if bounds is not None:
        if lower is not None or upper is not None:
            first = lower or upper
            return diags.error(first.key_span, "give `bounds` or `lower`/`upper`, not both")
        items = values.sequence(bounds.value, "bounds", bounds.span)
        if items is BAD:
            return BAD
        pairs = [
            values.pair(item, "a dimension's bounds", bounds.span, values.real) for item in items
        ]
        if BAD in pairs:
            return BAD
        lo, hi = tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
        spans = {"lower": bounds.span, "upper": bounds.span}
    elif lower is not None and upper is not None:
        lo = values.many(lower.value, "lower", lower.span, values.real)
        hi = values.many(upper.value, "upper", upper.span, values.real)
        spans = {"lower": lower.span, "upper": upper.span}
    else:
        missing = "upper" if lower is not None else "lower"
        return diags.error(stmt.span, f"threat box needs `{missing}`", BOX_USAGE)
    return build(diags, InputBox, stmt.span, spans, lower=lo, upper=hi)


def _boxes(kind, stmt, block: Block, values: Values, diags):
    """`threat boxes { box { lower [...]; upper [...] } box { ... } }`: a union of boxes."""
    parts = block.take_all("box")
    block.reject_rest(["box"])
    boxes = []
    for part in parts:
        if part.block is None or part.value is not None:
            boxes.append(diags.error(part.span, "each `box` of a union is a block", BOX_USAGE))
            continue
        boxes.append(_box("box", part, Block(part.block, "box", diags), values, diags))
    if any(b is BAD for b in boxes):
        return BAD
    if len(boxes) < 2:
        return diags.error(
            stmt.span, "threat boxes needs at least two `box { ... }` blocks", BOX_USAGE
        )
    return build(diags, BoxUnion, stmt.span, {}, boxes=tuple(boxes))


PROPERTIES = {
    "label_unchanged": (LabelUnchanged, None),
    "output_bounds": (OutputBounds, None),
    "iou_at_least": (IoUAtLeast, "tau"),
    "regret_at_most": (RegretAtMost, "r"),
    "accuracy_at_least": (AccuracyAtLeast, "a"),
}


def lower_property(stmt: Stmt, diags: Diagnostics):
    values = Values(diags)
    v = stmt.value
    name = v.name if isinstance(v, Call) else v.text if isinstance(v, Name) else None
    usage = (
        "label_unchanged, output_bounds, iou_at_least(tau), regret_at_most(r), "
        "accuracy_at_least(a), outputs { ... }"
    )
    if name == "outputs" and isinstance(v, Name):
        return lower_outputs(stmt, diags)
    if stmt.block is not None:
        return diags.error(
            stmt.block[0].span if stmt.block else stmt.span, "require takes no block"
        )
    if name not in PROPERTIES:
        where = v.span if v is not None else stmt.span
        what = (
            f"unknown property '{name}'"
            if name
            else f"require expects a property, got {describe(v)}"
        )
        return diags.error(where, what, usage)
    cls, field = PROPERTIES[name]
    if field is None:
        if isinstance(v, Call):
            return diags.error(v.span, f"{name} takes no arguments")
        return cls(span=v.span)
    if not isinstance(v, Call):
        return diags.error(v.span, f"{name} needs its threshold, e.g. {name}(0.5)")
    args = call_args(diags, v, (1, 1), f"{name}(value)")
    x = BAD if args is BAD else values.real(args[0], name, v.span)
    return build(diags, cls, v.span, {}, **{field: x})


__all__ = ["THREAT_KINDS", "lower_property", "lower_threat"]
