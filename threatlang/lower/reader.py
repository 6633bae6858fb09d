"""Reading statements and values out of the syntax tree, collecting diagnostics as it goes.

Each reader method returns the converted value or `BAD` (after recording a diagnostic), so one
pass over a file reports every problem in it instead of stopping at the first.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, TypeVar

import attrs

from ..errors import Diagnostic
from ..ir.options import Option
from ..ir.span import Span
from ..ir.validators import FieldError
from ..syntax import Call, ListV, Name, Num, Stmt, Str, TupleV, Value, describe

BAD: Any = object()  # marks a value that already produced a diagnostic
#: the largest whole number the language reads (int64, what numpy and torch index with)
MAX_INT = 2**63 - 1
DURATION_UNITS = {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
E = TypeVar("E", bound=enum.Enum)


class Diagnostics:
    """The errors of one file, in the order found (sorted when raised)."""

    def __init__(self) -> None:
        self.items: list[Diagnostic] = []

    def error(self, span: Span | None, message: str, expected: str | None = None) -> Any:
        self.items.append(Diagnostic(span, message, expected))
        return BAD


def choices(names: Iterable[str]) -> str:
    names = list(names)
    return "one of " + ", ".join(names) if len(names) > 1 else names[0]


class Values:
    """Typed conversion of syntax values; errors go to `diags`."""

    def __init__(self, diags: Diagnostics):
        self.diags = diags

    def number(self, v: Value | None, what: str, span: Span) -> Any:
        if isinstance(v, Num) and v.unit in (None, "px"):
            return v.value
        if isinstance(v, Num):
            return self.diags.error(v.span, f"{what} takes a plain number, not one in {v.unit}")
        return self.diags.error(_at(v, span), f"{what} expects a number, got {describe(v)}")

    def real(self, v: Value | None, what: str, span: Span) -> Any:
        """A real number; `%` is read as a fraction (99.9% → 0.999)."""
        if isinstance(v, Num) and v.unit == "%":
            return float(Decimal(str(v.value)) / 100)  # 99.999% is exactly 0.99999
        x = self.number(v, what, span)
        return BAD if x is BAD else float(x)

    def integer(
        self,
        v: Value | None,
        what: str,
        span: Span,
        unit: str | None = None,
        bounds: tuple[int, int] = (-MAX_INT, MAX_INT),
    ) -> Any:
        """A whole number within `bounds` (default: the 64-bit range)."""
        if isinstance(v, Num) and isinstance(v.value, int) and v.unit in (None, unit):
            low, high = bounds
            if not low <= v.value <= high:
                return self.diags.error(v.span, _outside(what, v.text, low, high))
            return v.value
        if isinstance(v, Num) and isinstance(v.value, int):
            return self.diags.error(
                v.span, f"{what} takes a count" + (f" in {unit}" if unit else "")
            )
        return self.diags.error(_at(v, span), f"{what} expects a whole number, got {describe(v)}")

    def count(self, v: Value | None, what: str, span: Span) -> Any:
        """A sample count: `2000` or `2000 samples`."""
        if isinstance(v, Num) and v.unit == "sample":
            return self.integer(attrs.evolve(v, unit="samples"), what, span, "samples")
        return self.integer(v, what, span, "samples")

    def duration(self, v: Value | None, what: str, span: Span) -> Any:
        """A time with its unit (`60s`, `500ms`, `2min`); bare numbers are ambiguous, so refused."""
        if isinstance(v, Num) and v.unit in DURATION_UNITS:
            return float(v.value) * DURATION_UNITS[v.unit]
        return self.diags.error(
            _at(v, span),
            f"{what} expects a duration with its unit, got {describe(v)}",
            "e.g. 60s, 500ms, 2min",
        )

    def string(self, v: Value | None, what: str, span: Span) -> Any:
        if isinstance(v, Str):
            return v.text
        return self.diags.error(_at(v, span), f"{what} expects a quoted string, got {describe(v)}")

    def word(self, v: Value | None, what: str, span: Span, allowed: Iterable[str]) -> Any:
        allowed = list(allowed)
        if isinstance(v, Name) and v.text in allowed:
            return v.text
        if isinstance(v, Name):
            return self.diags.error(v.span, f"unknown {what} '{v.text}'", choices(allowed))
        return self.diags.error(
            _at(v, span), f"{what} expects a name, got {describe(v)}", choices(allowed)
        )

    def identifier(self, v: Value | None, what: str, span: Span) -> Any:
        if isinstance(v, Name):
            return v.text
        return self.diags.error(_at(v, span), f"{what} expects a name, got {describe(v)}")

    def enum(self, v: Value | None, kind: type[E], what: str, span: Span) -> Any:
        word = self.word(v, what, span, [e.value for e in kind])
        return BAD if word is BAD else kind(word)

    def boolean(self, v: Value | None, what: str, span: Span) -> Any:
        word = self.word(v, what, span, ["true", "false"])
        return BAD if word is BAD else word == "true"

    def sequence(self, v: Value | None, what: str, span: Span) -> Any:
        if isinstance(v, ListV | TupleV):
            return v.items
        return self.diags.error(_at(v, span), f"{what} expects a list [...], got {describe(v)}")

    def pair(self, v: Value | None, what: str, span: Span, item: Callable) -> Any:
        items = self.sequence(v, what, span)
        if items is BAD:
            return BAD
        if len(items) != 2:
            return self.diags.error(
                v.span, f"{what} expects two values [low, high], got {len(items)}"
            )
        out = tuple(item(x, what, span) for x in items)
        return BAD if BAD in out else out

    def many(self, v: Value | None, what: str, span: Span, item: Callable) -> Any:
        """A list of items, or a single item standing for a one-element list."""
        items = v.items if isinstance(v, ListV | TupleV) else (v,)
        out = tuple(item(x, what, span) for x in items)
        return BAD if any(x is BAD for x in out) else out

    def option_value(self, v: Value | None, span: Span) -> Any:
        """Plain Python for an option: numbers, strings, names, booleans, lists (as tuples)."""
        if v is None:
            return True
        if isinstance(v, Num):
            if isinstance(v.value, int) and abs(v.value) > MAX_INT:
                return self.diags.error(v.span, _outside("an option", v.text, -MAX_INT, MAX_INT))
            return v.value
        if isinstance(v, Str):
            return v.text
        if isinstance(v, Name):
            return {"true": True, "false": False}.get(v.text, v.text)
        if isinstance(v, ListV | TupleV):
            out = tuple(self.option_value(x, span) for x in v.items)
            return BAD if BAD in out else out
        return self.diags.error(
            v.span, "an option value is a number, string, name or list, not a call"
        )


def _outside(what: str, text: str, low: int, high: int) -> str:
    if low == -MAX_INT and high == MAX_INT:
        return f"{what} {text} is beyond the 64-bit range (at most 2^63 - 1 in size)"
    return f"{what} must lie in {low}..{high}, got {text}"


def _at(v: Value | None, span: Span) -> Span:
    return v.span if v is not None else span


class Block:
    """The statements of one `{ ... }` block; each key is taken once, leftovers are reported."""

    def __init__(self, stmts: tuple[Stmt, ...] | None, owner: str, diags: Diagnostics):
        self.stmts = list(stmts or ())
        self.owner = owner
        self.diags = diags
        self.used: set[int] = set()
        self.by_key: dict[str, list[int]] = {}
        for i, stmt in enumerate(self.stmts):
            self.by_key.setdefault(stmt.key, []).append(i)

    def _indices(self, key: str) -> list[int]:
        return [i for i in self.by_key.get(key, ()) if i not in self.used]

    def take(self, key: str) -> Stmt | None:
        found = self._indices(key)
        for i in found[1:]:
            self.diags.error(self.stmts[i].key_span, f"'{key}' is given twice in {self.owner}")
        self.used.update(found)
        return self.stmts[found[0]] if found else None

    def take_all(self, key: str) -> list[Stmt]:
        found = self._indices(key)
        self.used.update(found)
        return [self.stmts[i] for i in found]

    def rest(self) -> list[Stmt]:
        return [s for i, s in enumerate(self.stmts) if i not in self.used]

    def reject_rest(self, known: Iterable[str]) -> None:
        for stmt in self.rest():
            self.diags.error(
                stmt.key_span, f"unknown field '{stmt.key}' in {self.owner}", choices(known)
            )
            self.used.add(self.stmts.index(stmt))

    def options(self, values: Values) -> tuple[Option, ...]:
        """Everything not taken becomes a backend option (bound and checked by the backend)."""
        out = []
        for stmt in self.rest():
            if stmt.block is not None:
                self.diags.error(
                    stmt.span, f"option '{stmt.key}' in {self.owner} cannot have a block"
                )
                continue
            value = values.option_value(stmt.value, stmt.span)
            unit = stmt.value.unit if isinstance(stmt.value, Num) else None
            if value is not BAD:
                out.append(Option(stmt.key, value, unit, span=stmt.span))
        return tuple(out)


def build(diags: Diagnostics, cls: type, span: Span, field_spans: dict[str, Span], **kwargs) -> Any:
    """Construct an IR node unless an argument is BAD; validator failures point at their field."""
    if any(v is BAD for v in kwargs.values()):
        return BAD
    try:
        return cls(**kwargs, span=span)
    except FieldError as err:
        return diags.error(field_spans.get(err.field, span), _field_message(err))
    except (TypeError, ValueError) as err:
        return diags.error(span, str(err))


def _field_message(err: FieldError) -> str:
    """'epochs must be >= 1' reads better than 'must be >= 1'; other messages stand alone."""
    return (
        f"{err.field} {err.message}"
        if err.message.startswith(("must", "expected"))
        else err.message
    )


def no_block(diags: Diagnostics, stmt: Stmt, what: str) -> None:
    if stmt.block is not None:
        diags.error(stmt.block[0].span if stmt.block else stmt.span, f"{what} takes no block")


def call_args(diags: Diagnostics, call: Call, arity: tuple[int, int], usage: str) -> tuple | Any:
    if call.kwargs:
        return diags.error(call.span, f"{call.name}(...) takes positional arguments only", usage)
    if not arity[0] <= len(call.args) <= arity[1]:
        return diags.error(call.span, f"wrong number of arguments to {call.name}", usage)
    return call.args
