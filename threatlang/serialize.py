"""IR ⇄ JSON. `compile --emit json` writes this; loading it back gives an equal IR."""

from __future__ import annotations

import enum
from typing import Any

import attrs

from . import ir
from .ir.span import Span


def _ir_nodes() -> dict[str, type]:
    """Every attrs class defined in `threatlang.ir`'s modules, by name: a new IR node (a new
    threat family, say) is serialisable without an edit here. The class names are part of the
    format, so two nodes may not share a name."""
    import importlib
    import pkgutil

    out: dict[str, type] = {}
    for info in pkgutil.iter_modules(ir.__path__):
        module = importlib.import_module(f"{ir.__name__}.{info.name}")
        for cls in vars(module).values():
            if isinstance(cls, type) and attrs.has(cls) and cls.__module__ == module.__name__:
                if out.setdefault(cls.__name__, cls) is not cls:
                    raise TypeError(f"two IR nodes are named {cls.__name__}")
    return out


NODES: dict[str, type] = _ir_nodes()
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
