"""Where work items run: in this process (default) or elsewhere (e.g. Ray, `--executor ray`).

A plan hands the executor a top-level function and per-example work items; results come back
in the order the items were given, so the same plan yields the same records on any executor.
Functions and items must be picklable for executors that leave the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    name: str

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """fn(item) for each item, yielded in item order as soon as each is available."""
        ...


class InProcessExecutor:
    """Runs each item here, one after another (the default; zero overhead)."""

    name = "inprocess"

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)
