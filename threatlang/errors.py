"""Diagnostics with source positions, shared by the parser, the IR validators and the checker.

Every user-facing problem with a spec becomes a `Diagnostic` carrying the `Span` it points at, so
the CLI can print ``file:line:col``, the source line and a caret, and exit with code 2.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from .ir.span import Span
from .ir.validators import FieldError

__all__ = ["CapabilityError", "Diagnostic", "FieldError", "SpecError", "UsageError", "render"]


@attrs.frozen
class Diagnostic:
    """One problem with a spec: where it is, what is wrong, and (optionally) what was expected."""

    span: Span | None
    message: str
    expected: str | None = None

    def sort_key(self) -> tuple:
        if self.span is None:
            return ("", 0, 0, self.message)
        return (self.span.file, self.span.line, self.span.column, self.message)


class SpecError(Exception):
    """A spec that cannot be turned into a valid IR; holds every diagnostic found, sorted."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics: tuple[Diagnostic, ...] = tuple(
            sorted(set(diagnostics), key=Diagnostic.sort_key)
        )
        super().__init__("\n".join(_plain(d) for d in self.diagnostics))


class CapabilityError(Exception):
    """No registered backend can run the spec; carries the unsupported nodes' diagnostics."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(sorted(set(diagnostics), key=Diagnostic.sort_key))
        super().__init__("\n".join(_plain(d) for d in self.diagnostics))


class UsageError(Exception):
    """A problem outside the spec text (missing file, wrong shape): one sentence saying what to do."""


def _plain(d: Diagnostic) -> str:
    where = f"{d.span}: " if d.span is not None else ""
    tail = f" (expected {d.expected})" if d.expected else ""
    return f"{where}{d.message}{tail}"


def render(diagnostic: Diagnostic, source: str | None) -> str:
    """Format a diagnostic the way compilers do: location, message, source line, carets."""
    head = _plain(diagnostic)
    span = diagnostic.span
    if span is None or source is None:
        return f"error: {head}" if span is None else f"{span}: error: {head[len(str(span)) + 2 :]}"
    lines = source.splitlines()
    text = f"{span}: error: {head[len(str(span)) + 2 :]}"
    if 1 <= span.line <= len(lines):
        line = lines[span.line - 1]
        width = 1
        if span.end_line == span.line and span.end_column > span.column:
            width = span.end_column - span.column
        gutter = f"{span.line:>5} | "
        caret = " " * (len(gutter) + span.column - 1) + "^" * max(1, width)
        text += f"\n{gutter}{line}\n{caret}"
    return text
