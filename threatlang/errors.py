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


#: the longest echoed source line and message: a 200 KB line must not flood the terminal
ECHO_WIDTH = 120
MESSAGE_WIDTH = 400


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _window(line: str, column: int) -> tuple[str, int, int]:
    """The part of `line` shown around `column` (1-based): (text, first column shown, end)."""
    if len(line) <= ECHO_WIDTH:
        return line, 1, len(line) + 1
    start = max(1, min(column - ECHO_WIDTH // 2, len(line) + 1 - ECHO_WIDTH))
    end = start + ECHO_WIDTH
    text = (
        ("…" if start > 1 else "") + line[start - 1 : end - 1] + ("…" if end <= len(line) else "")
    )
    return text, start, end


def render(diagnostic: Diagnostic, source: str | None) -> str:
    """Format a diagnostic the way compilers do: location, message, source line, carets.

    A long source line is echoed as a window of `ECHO_WIDTH` characters around the column,
    with … where it was cut."""
    head = _clip(_plain(diagnostic), MESSAGE_WIDTH + len(str(diagnostic.span or "")))
    span = diagnostic.span
    if span is None or source is None:
        return f"error: {head}" if span is None else f"{span}: error: {head[len(str(span)) + 2 :]}"
    lines = source.splitlines()
    text = f"{span}: error: {head[len(str(span)) + 2 :]}"
    if 1 <= span.line <= len(lines):
        shown, start, end = _window(lines[span.line - 1], span.column)
        width = 1
        if span.end_line == span.line and span.end_column > span.column:
            width = min(span.end_column, end) - span.column
        gutter = f"{span.line:>5} | "
        offset = span.column - start + (1 if start > 1 else 0)
        caret = " " * (len(gutter) + offset) + "^" * max(1, width)
        text += f"\n{gutter}{shown}\n{caret}"
    return text
