"""The uniform syntax tree the grammar produces, before it is lowered to the IR.

Kept separate from the IR so the grammar can stay small and uniform while the lowering step
(`threatlang.lower`) decides which keys and values are valid and says what it expected.
"""

from __future__ import annotations

import attrs

from .ir.span import Span


@attrs.frozen
class Name:
    text: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Str:
    text: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Num:
    value: int | float
    unit: str | None
    text: str
    span: Span = attrs.field(eq=False)


@attrs.frozen
class Call:
    name: str
    args: tuple
    kwargs: tuple[tuple[str, object], ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class ListV:
    items: tuple
    span: Span = attrs.field(eq=False)


@attrs.frozen
class TupleV:
    items: tuple
    span: Span = attrs.field(eq=False)


Value = Name | Str | Num | Call | ListV | TupleV


@attrs.frozen
class Stmt:
    key: str
    value: Value | None
    block: tuple[Stmt, ...] | None
    span: Span = attrs.field(eq=False)
    key_span: Span = attrs.field(eq=False)


@attrs.frozen
class SpecNode:
    name: str
    body: tuple[Stmt, ...]
    span: Span = attrs.field(eq=False)


@attrs.frozen
class FileNode:
    version: int | None
    version_span: Span | None
    specs: tuple[SpecNode, ...]


def describe(value: Value | None) -> str:
    """A short human description of a value for error messages."""
    if value is None:
        return "nothing"
    if isinstance(value, Name):
        return f"'{value.text}'"
    if isinstance(value, Str):
        return f'the string "{value.text}"'
    if isinstance(value, Num):
        return f"the number {value.text}"
    if isinstance(value, Call):
        return f"'{value.name}(...)'"
    if isinstance(value, ListV):
        return "a list"
    return "a tuple"
