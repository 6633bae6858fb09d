"""Progress bars with ETA for long loops; silent when not a terminal or when asked to be quiet."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


class ProgressFactory:
    """Hands out `track(...)` loops; one per run, passed to backends in the `RunContext`."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.enabled = not quiet and console.is_terminal and sys.stderr.isatty()

    def track(
        self,
        items: Iterable[T],
        total: int | None = None,
        description: str = "",
        sizes: Sequence[int] | None = None,
    ) -> Iterator[T]:
        """Yield `items`, advancing the bar by 1 per item, or by `sizes[i]` for item i (a
        group of examples computed together counts as its examples)."""
        if not self.enabled:
            yield from items
            return
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as bar:
            task = bar.add_task(description, total=total if total is not None else _len(items))
            for i, item in enumerate(items):
                yield item
                bar.advance(task, 1 if sizes is None else sizes[i])


def _len(items) -> int | None:
    try:
        return len(items)
    except TypeError:
        return None
