"""IR ⇄ JSON. `compile --emit json` writes this; loading it back gives an equal IR."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from . import ir
from .ir.span import Span

#: every IR node class by name (explicit: the JSON names are part of the format)
NODES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        ir.Spec,
        ir.ModelRef,
        ir.DataRef,
        ir.Domain,
        ir.Preprocess,
        ir.Option,
        ir.PatchSet,
        ir.ValueRange,
        ir.AllLocations,
        ir.Corners,
        ir.Stride,
        ir.Explicit,
        ir.Square,
        ir.Rectangle,
        ir.Line,
        ir.Diamond,
        ir.Parallelogram,
        ir.Mask,
        ir.LpBall,
        ir.BidSupport,
        ir.Pyramid,
        ir.LabelUnchanged,
        ir.IoUAtLeast,
        ir.RegretAtMost,
        ir.AccuracyAtLeast,
        ir.OutputBounds,
        ir.Train,
        ir.Certify,
        ir.Smooth,
        ir.DetectionEncoding,
        ir.Attack,
        ir.Evaluate,
    )
}
FORMAT = "threatlang-ir/1"


def to_json(node: Any) -> Any:
    """A JSON-ready structure: nodes as {"node": Class, fields...}, enums by value, spans kept."""
    if attrs.has(type(node)) and type(node).__name__ in NODES:
        out: dict[str, Any] = {"node": type(node).__name__}
        for field in attrs.fields(type(node)):
            if field.name == "span":
                continue
            out[field.name] = to_json(getattr(node, field.name))
        span = getattr(node, "span", None)
        if span is not None:
            out["span"] = [span.file, span.line, span.column, span.end_line, span.end_column]
        return out
    if isinstance(node, enum.Enum):
        return node.value
    if isinstance(node, tuple | list):
        return [to_json(v) for v in node]
    return node


def document(specs) -> dict:
    return {"format": FORMAT, "specs": [to_json(s) for s in specs]}


def from_json(data: Any) -> Any:
    """Inverse of `to_json`; node constructors re-run every validator."""
    if isinstance(data, dict) and "node" in data:
        cls = NODES.get(data["node"])
        if cls is None:
            raise ValueError(f"unknown IR node {data['node']!r}")
        kwargs = {k: _tuples(from_json(v)) for k, v in data.items() if k not in ("node", "span")}
        span = Span(*data["span"]) if data.get("span") else None
        return cls(**kwargs, span=span)
    if isinstance(data, list):
        return tuple(from_json(v) for v in data)
    return data


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list | tuple) else value


def load_document(data: dict) -> tuple:
    if data.get("format") != FORMAT:
        raise ValueError(
            f"not a threatlang IR document (format {data.get('format')!r}, expected {FORMAT})"
        )
    return tuple(from_json(s) for s in data["specs"])
