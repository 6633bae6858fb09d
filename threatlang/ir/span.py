"""Source positions carried by every IR node (excluded from equality and hashing)."""

from __future__ import annotations

import attrs


@attrs.frozen
class Span:
    """Where a node came from: 1-based line and column, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def span_field():
    """The `span` attribute every IR node has: keyword-only, optional, ignored by ==/hash."""
    return attrs.field(default=None, kw_only=True, eq=False, repr=False)
