"""The per-example run loop every backend shares: skip what is done, run the rest through the
executor, append each record the moment it arrives, and show progress with an ETA."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .report import Record


def run_items(
    ctx: Any,
    items: Sequence[tuple[str, Any]],
    fn: Callable[[Any], Record],
    description: str,
) -> tuple[Record, ...]:
    """Run `fn(payload)` for every `(id, payload)` not yet in `ctx.records`; return all records
    of `items` in item order (those from before a resume included).

    `fn` must return a `Record` whose id is the item's id. For executors that leave the process
    (Ray), `fn` and the payloads must be picklable: a top-level function and plain data/tensors.
    """
    done = ctx.records.done_ids()
    todo = [(item_id, payload) for item_id, payload in items if item_id not in done]
    results = ctx.executor.map(fn, [payload for _, payload in todo])
    for (item_id, _), record in zip(
        todo, ctx.progress.track(results, total=len(todo), description=description), strict=True
    ):
        if record.id != item_id:
            raise ValueError(f"work item {item_id!r} returned a record for {record.id!r}")
        ctx.records.append(record)
    return tuple(r for r in (ctx.records.get(item_id) for item_id, _ in items) if r is not None)
