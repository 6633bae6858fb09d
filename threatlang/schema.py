"""The typed contracts of threatlang's documents, derived from the classes (no torch here).

- `ir_schema()`: the JSON schema of the IR document `compile --emit json` writes (format
  `threatlang-ir/1`, see `serialize.py`), built from `threatlang.ir`'s attrs classes and their
  type hints, so a new node or field is in the schema without an edit here.
- `summary_problems(schema, metrics)`: how a backend's summary metrics fail its declared
  `Capabilities.summary` class (missing or unknown keys, values of the wrong JSON type).
- `summary_fields(schema)`: each metric's name, type, meaning and unit, for the docs. Meaning
  comes from `attrs.field(metadata={"doc": ...})` or else the `#:` comment above the field;
  the unit from `metadata={"unit": ...}`, a trailing `[unit]` in that comment, or a
  `_seconds` / `_count` name.

`python -m threatlang.schema` prints the IR schema (docs/ir-schema.json is that output).
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any

import attrs

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
SPAN_SCHEMA = {
    "description": "source position: [file, line, column, end_line, end_column] (1-based)",
    "type": "array",
    "prefixItems": [{"type": "string"}] + [{"type": "integer"}] * 4,
    "minItems": 5,
    "maxItems": 5,
}


# -------------------------------------------------------------------------------- IR schema
def ir_schema() -> dict[str, Any]:
    """The JSON schema (draft 2020-12) of an IR document: `{"format": "threatlang-ir/1",
    "specs": [Spec, ...]}`, one definition per IR node class."""
    from .serialize import FORMAT, NODES

    defs = {name: node_schema(cls) for name, cls in sorted(NODES.items())}
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": f"https://threatlang.invalid/schema/{FORMAT}.json",
        "title": f"threatlang IR document ({FORMAT})",
        "description": "What `threatlang compile --emit json` writes and `load_document` reads.",
        "type": "object",
        "properties": {
            "format": {"const": FORMAT, "description": "the document's format and version"},
            "specs": {"type": "array", "items": {"$ref": "#/$defs/Spec"}},
        },
        "required": ["format", "specs"],
        "additionalProperties": False,
        "$defs": defs,
    }


def node_schema(cls: type) -> dict[str, Any]:
    """One IR node as a JSON object: `node` names the class, every field by its name."""
    hints = _hints(cls)
    props: dict[str, Any] = {"node": {"const": cls.__name__}}
    required = ["node"]
    for field in attrs.fields(cls):
        if field.name == "span":
            props["span"] = SPAN_SCHEMA
            continue
        props[field.name] = json_type(hints[field.name])
        if field.default is attrs.NOTHING:
            required.append(field.name)
    out: dict[str, Any] = {"type": "object", "properties": props, "required": required}
    out["additionalProperties"] = False
    doc = first_paragraph(cls)
    return {"description": doc, **out} if doc else out


def json_type(hint: Any) -> dict[str, Any]:
    """The JSON schema of a value of Python type `hint`, as `serialize.to_json` writes it."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return {}
    if origin in (typing.Union, types.UnionType):
        options = [json_type(a) for a in args]
        return {"anyOf": _dedupe(options)}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (tuple, list) or hint in (tuple, list):
        if not args:
            return {"type": "array"}
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": json_type(args[0])}
        n = len(args)
        return {"type": "array", "prefixItems": [json_type(a) for a in args], "minItems": n,
                "maxItems": n}  # fmt: skip
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        value = json_type(args[1]) if args else {}
        return {"type": "object", "additionalProperties": value}
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return {"enum": [e.value for e in hint]}
        if attrs.has(hint):
            return {"$ref": f"#/$defs/{hint.__name__}"}
        if hint is bool:
            return {"type": "boolean"}
        if hint is int:
            return {"type": "integer"}
        if hint is float:
            return {"type": "number"}
        if hint is str:
            return {"type": "string"}
        if hint is type(None):
            return {"type": "null"}
    raise TypeError(f"no JSON form for the type {hint!r}")


def _dedupe(options: list[dict]) -> list[dict]:
    out: list[dict] = []
    for o in options:
        if o not in out:
            out.append(o)
    return out


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def first_paragraph(obj: Any) -> str:
    """The first paragraph of a class's own docstring (none inherited, e.g. from Enum)."""
    doc = inspect.cleandoc(vars(obj).get("__doc__") or "")
    return " ".join(doc.split("\n\n")[0].split())


# --------------------------------------------------------------------------- summary schemas
@attrs.frozen
class MetricDoc:
    """One documented summary metric."""

    name: str
    type: str  # the annotation, as written
    meaning: str  # "" when undocumented
    unit: str  # "" when not stated
    required: bool  # no default: every summary carries it


_UNIT = re.compile(r"\s*\[([^\]]+)\]\s*$")


def summary_fields(schema: type) -> list[MetricDoc]:
    """Every field of a backend's summary class, with its meaning and unit."""
    comments = field_comments(schema)
    out = []
    for field in attrs.fields(schema):
        meaning = field.metadata.get("doc") or comments.get(field.name, "")
        unit = field.metadata.get("unit", "")
        found = _UNIT.search(meaning)
        if found:
            meaning = meaning[: found.start()].rstrip()
            unit = unit or found.group(1)
        if not unit and field.name.endswith("_seconds"):
            unit = "s"
        if not unit and field.name.endswith("_count"):
            unit = "count"
        out.append(
            MetricDoc(
                field.name,
                type_text(schema, field.name),
                meaning,
                unit,
                field.default is attrs.NOTHING,
            )
        )
    return out


def field_comments(cls: type) -> dict[str, str]:
    """The `#:` comment lines directly above each annotated field in the class body."""
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        found = _FIELD.match(line)
        if found and pending:
            out[found.group(1)] = " ".join(pending)
        pending = []
    return out


_FIELD = re.compile(r"^\s+([A-Za-z_]\w*)\s*:")


def type_text(cls: type, name: str) -> str:
    raw = cls.__annotations__.get(name)
    if isinstance(raw, str):
        return raw
    return getattr(raw, "__name__", None) or str(raw).replace("typing.", "")


def summary_problems(schema: type, metrics: Mapping[str, Any]) -> list[str]:
    """What keeps `metrics` (a summary's JSON-ready metrics) from being an instance of the
    backend's declared summary class: unknown keys, missing required keys, wrong types."""
    hints = _hints(schema)
    fields = {f.name: f for f in attrs.fields(schema)}
    problems = [
        f"unknown metric {k!r} (not in {schema.__name__})" for k in metrics if k not in fields
    ]
    for name, field in fields.items():
        if name not in metrics:
            if field.default is attrs.NOTHING:
                problems.append(f"missing metric {name!r}")
            continue
        where = _mismatch(metrics[name], hints[name])
        if where is not None:
            problems.append(f"metric {name!r}: {where}")
    return problems


def _mismatch(value: Any, hint: Any) -> str | None:
    """Why `value` (JSON-ready) is not of type `hint`, or None when it is."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin in (typing.Union, types.UnionType):
        if any(_mismatch(value, a) is None for a in args):
            return None
        return f"{value!r} is none of {hint}"
    if origin is typing.Literal:
        return None if value in args else f"{value!r} is not one of {args}"
    if origin in (list, tuple) or hint in (list, tuple):
        if not isinstance(value, list | tuple):
            return f"expected a list, got {type(value).__name__}"
        item = args[0] if args else Any
        return next((m for v in value if (m := _mismatch(v, item)) is not None), None)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            return f"expected a mapping, got {type(value).__name__}"
        kt, vt = args if args else (Any, Any)
        bad = (m for k, v in value.items() for m in (_mismatch(k, kt), _mismatch(v, vt)) if m)
        return next(bad, None)
    if isinstance(hint, type) and attrs.has(hint):
        if not isinstance(value, Mapping):
            return f"expected a {hint.__name__} mapping, got {type(value).__name__}"
        inner = summary_problems(hint, value)
        return "; ".join(inner) or None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        ok = value in {e.value for e in hint}
        return None if ok else f"{value!r} is not one of {[e.value for e in hint]}"
    if hint is float:  # JSON writes infinities as "inf"/"-inf" (report._jsonable)
        ok = (isinstance(value, int | float) and not isinstance(value, bool)) or value in (
            "inf",
            "-inf",
        )
        return None if ok else f"expected a number, got {value!r}"
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else f"expected a whole number, got {value!r}"
    if hint is bool:
        return None if isinstance(value, bool) else f"expected true/false, got {value!r}"
    if hint is str:
        return None if isinstance(value, str) else f"expected a string, got {value!r}"
    if hint is type(None):
        return None if value is None else f"expected null, got {value!r}"
    return None if isinstance(value, hint) else f"expected {hint}, got {type(value).__name__}"


def main() -> int:
    json.dump(ir_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
