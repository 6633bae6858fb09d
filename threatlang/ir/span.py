"""Source positions carried by every IR node (excluded from equality and hashing)."""

from __future__ import annotations

from typing import NamedTuple

import attrs


class Span(NamedTuple):
    """Where a node came from: 1-based line and column, end exclusive.

    A named tuple rather than an attrs class: the parser makes one per token, and tuple
    construction is several times cheaper (it is on the hot path of `threatlang check`)."""

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
