"""The per-example run loop every backend shares: skip what is done, run the rest through the
executor, append each record the moment it arrives, and show progress with an ETA."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .report import Record


def run_items(
    ctx: Any,
    items: Sequence[tuple[str | tuple[str, ...], Any]],
    fn: Callable[[Any], Record | Sequence[Record]],
    description: str,
) -> tuple[Record, ...]:
    """Run `fn(payload)` for every `(id, payload)` not yet in `ctx.records`; return all records
    of `items` in item order (those from before a resume included).

    `fn` returns a `Record` whose id is the item's id — or, for a group item whose id is a tuple
    of ids (several examples computed together, e.g. one batched bound computation), one record
    per id in that order. A group runs again on resume unless all its ids are done; only its
    missing records are appended. For executors that leave the process (Ray), `fn` and the
    payloads must be picklable: a top-level function (bind shared state with functools.partial)
    and plain data/tensors.
    """
    done = ctx.records.done_ids()
    todo = [(item_id, payload) for item_id, payload in items if not set(_ids(item_id)) <= done]
    results = ctx.executor.map(fn, [payload for _, payload in todo])
    sizes = [len(set(_ids(item_id)) - done) for item_id, _ in todo]  # examples, not groups
    bar = ctx.progress.track(results, total=sum(sizes), description=description, sizes=sizes)
    for (item_id, _), result in zip(todo, bar, strict=True):
        records = tuple(result) if isinstance(item_id, tuple) else (result,)
        if tuple(r.id for r in records) != _ids(item_id):
            got = [r.id for r in records]
            raise ValueError(f"work item {item_id!r} returned records for {got!r}")
        for record in records:
            if record.id not in done:
                ctx.records.append(record)
    wanted = [i for item_id, _ in items for i in _ids(item_id)]
    return tuple(r for r in (ctx.records.get(i) for i in wanted) if r is not None)


def _ids(item_id: str | tuple[str, ...]) -> tuple[str, ...]:
    return item_id if isinstance(item_id, tuple) else (item_id,)
