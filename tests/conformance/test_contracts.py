"""The documented contracts: the IR reference, the IR document's JSON schema and version, the
per-backend summary pages and `py.typed` — each generated from the code and checked here, so
a change to the classes that is not regenerated fails."""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest

from threatlang.ir.spec import LANGUAGE_VERSION
from threatlang.parse import load_all
from threatlang.schema import ir_schema, summary_fields, summary_problems
from threatlang.serialize import FORMAT, NODES, document, load_document

ROOT = Path(__file__).parents[2]
SPECS = sorted((ROOT / "specs").glob("*.threat"))


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------ generated pages
def test_ir_reference_is_current() -> None:
    tool = _tool("gen_ir_reference")
    assert tool.REFERENCE.read_text() == tool.render_reference(), (
        "docs/ir-reference.md is stale: run python tools/gen_ir_reference.py"
    )


def test_ir_schema_file_is_current() -> None:
    tool = _tool("gen_ir_reference")
    assert tool.SCHEMA.read_text() == tool.render_schema(), (
        "docs/ir-schema.json is stale: run python tools/gen_ir_reference.py"
    )


def test_summaries_page_is_current() -> None:
    tool = _tool("gen_summaries")
    assert tool.PAGE.read_text() == tool.render(), (
        "docs/summaries.md is stale: run python tools/gen_summaries.py"
    )


def test_ir_reference_names_every_node_and_field() -> None:
    text = (ROOT / "docs" / "ir-reference.md").read_text()
    for name, cls in NODES.items():
        assert f"### {name}\n" in text
        for field in attrs.fields(cls):
            if field.name != "span":
                assert f"| `{field.name}` |" in text, f"{name}.{field.name}"


# ------------------------------------------------------------------------------ IR schema
def validator():
    """jsonschema's validator when it is installed, else the minimal one below."""
    try:
        import jsonschema
    except ImportError:
        return lambda doc: list(minimal_errors(ir_schema(), doc, ir_schema()))
    checker = jsonschema.Draft202012Validator(ir_schema())
    return lambda doc: [e.message for e in checker.iter_errors(doc)]


def minimal_errors(schema: dict, value: Any, root: dict, path: str = "$"):
    """The JSON-schema subset `threatlang.schema` emits: $ref, anyOf, const, enum, type,
    properties/required/additionalProperties, items/prefixItems/minItems/maxItems."""
    if "$ref" in schema:
        yield from minimal_errors(
            root["$defs"][schema["$ref"].rsplit("/", 1)[1]], value, root, path
        )
        return
    if "anyOf" in schema:
        if all(any(True for _ in minimal_errors(s, value, root, path)) for s in schema["anyOf"]):
            yield f"{path}: matches no alternative"
        return
    if "const" in schema and value != schema["const"]:
        yield f"{path}: expected {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        yield f"{path}: not one of {schema['enum']}"
    kinds = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    t = schema.get("type")
    if t in ("integer", "number"):
        ok = isinstance(value, int if t == "integer" else int | float)
        if not ok or isinstance(value, bool):
            yield f"{path}: expected {t}"
            return
    elif t is not None and not isinstance(value, kinds[t]):
        yield f"{path}: expected {t}"
        return
    if t == "object":
        props = schema.get("properties", {})
        for key in schema.get("required", ()):
            if key not in value:
                yield f"{path}: missing {key}"
        for key, item in value.items():
            if key in props:
                yield from minimal_errors(props[key], item, root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                yield f"{path}: unknown key {key}"
            elif isinstance(schema.get("additionalProperties"), dict):
                extra = schema["additionalProperties"]
                yield from minimal_errors(extra, item, root, f"{path}.{key}")
    if t == "array":
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            yield f"{path}: wrong length {len(value)}"
        fixed = schema.get("prefixItems", [])
        for i, item in enumerate(value):
            sub = fixed[i] if i < len(fixed) else schema.get("items")
            if sub is not None:
                yield from minimal_errors(sub, item, root, f"{path}[{i}]")


@functools.cache
def _document(path: Path) -> str:
    """The spec file's IR document as JSON text (parsed once per session)."""
    return json.dumps(document(load_all(path)))


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_every_shipped_spec_validates_against_the_schema(path: Path) -> None:
    assert validator()(json.loads(_document(path))) == []


def test_the_minimal_validator_agrees_on_every_spec() -> None:
    """The fallback validator (used without jsonschema) accepts every shipped spec too."""
    schema = ir_schema()
    for path in SPECS:
        assert list(minimal_errors(schema, json.loads(_document(path)), schema)) == [], path.name


def _spec_doc() -> dict:
    return json.loads(json.dumps(document(load_all(ROOT / "specs" / "quickstart.threat"))))


@pytest.mark.parametrize(
    "break_it",
    [
        lambda d: d.update(format="threatlang-ir/0"),
        lambda d: d["specs"][0].update(seed="zero"),
        lambda d: d["specs"][0].update(colour="red"),
        lambda d: d["specs"][0].pop("name"),
        lambda d: d["specs"][0]["threat"].update(node="Blob"),
        lambda d: d["specs"][0]["model"].update(kind="pickle"),
        lambda d: d["specs"][0].update(span=["f", 1]),
    ],
    ids=["format", "type", "unknown-field", "missing-field", "node", "enum", "span"],
)
@pytest.mark.parametrize("engine", ["validator", "minimal"])
def test_the_schema_rejects_a_broken_document(break_it, engine) -> None:
    doc = copy.deepcopy(_spec_doc())
    check = validator() if engine == "validator" else (
        lambda d: list(minimal_errors(ir_schema(), d, ir_schema()))
    )  # fmt: skip
    assert check(doc) == []
    break_it(doc)
    assert check(doc) != []


def test_the_document_carries_its_version() -> None:
    doc = _spec_doc()
    assert doc["format"] == FORMAT == "threatlang-ir/1"
    assert doc["specs"][0]["version"] == LANGUAGE_VERSION
    schema = ir_schema()
    assert schema["properties"]["format"] == {
        "const": FORMAT,
        "description": schema["properties"]["format"]["description"],
    }
    assert FORMAT in schema["$id"]
    assert load_document(doc) == load_all(ROOT / "specs" / "quickstart.threat")
    with pytest.raises(ValueError, match="expected threatlang-ir/1"):
        load_document({**doc, "format": "threatlang-ir/2"})


def test_the_schema_defines_every_ir_node() -> None:
    assert set(ir_schema()["$defs"]) == set(NODES)


# -------------------------------------------------------------------------- summary schemas
@attrs.frozen
class _Inner:
    hits: int


@attrs.frozen
class _Summary:
    #: fraction of items certified [fraction]
    certified_accuracy: float
    soundness_violations: int
    #: per radius
    per_radius: dict[str, float | None] | None = None
    inner: _Inner | None = None
    total_seconds: float | None = None


def test_summary_problems_names_every_mismatch() -> None:
    good = {"certified_accuracy": 1, "soundness_violations": 0, "per_radius": {"0.5": None}}
    assert summary_problems(_Summary, good) == []
    assert summary_problems(_Summary, {**good, "inner": {"hits": 2}}) == []
    bad = {
        "certified_accuracy": "high",
        "per_radius": {"0.5": "x"},
        "inner": {"hits": 1.5},
        "unsound": 0,
    }
    problems = summary_problems(_Summary, bad)
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    for word in ("unsound", "soundness_violations", "certified_accuracy", "per_radius", "hits"):
        assert word in joined
    assert summary_problems(_Summary, {**good, "soundness_violations": True}) != []


def test_summary_fields_read_meaning_and_unit() -> None:
    docs = {f.name: f for f in summary_fields(_Summary)}
    assert docs["certified_accuracy"].meaning == "fraction of items certified"
    assert docs["certified_accuracy"].unit == "fraction"
    assert docs["certified_accuracy"].required and not docs["per_radius"].required
    assert docs["soundness_violations"].meaning == ""
    assert docs["total_seconds"].unit == "s"


# ----------------------------------------------------------------------------------- typing
def test_the_package_ships_py_typed() -> None:
    assert (ROOT / "threatlang" / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["threatlang"]
