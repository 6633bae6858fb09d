"""Where work items run: in this process (default) or on a Ray cluster (`--executor ray`).

A plan hands the executor a top-level function and per-example work items; results come back
in the order the items were given, so the same plan yields the same records on any executor.
Functions and items must be picklable for executors that leave the process.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar

from .errors import UsageError

T = TypeVar("T")
R = TypeVar("R")


class ExecutorKind(enum.Enum):
    INPROCESS = "inprocess"
    RAY = "ray"


class Executor(Protocol):
    name: str

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        """fn(item) for each item, yielded in item order as soon as each is available."""
        ...

    def close(self) -> None:
        """Release what the executor started (a local cluster); a no-op otherwise."""
        ...


class InProcessExecutor:
    """Runs each item here, one after another (the default; zero overhead)."""

    name = "inprocess"

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        for item in items:
            yield fn(item)

    def close(self) -> None:
        pass


class RayExecutor:
    """Runs items on Ray workers: an existing cluster (`address`) or a local one started here.

    Each worker is an actor that unpickles `fn` once (a model inside `fn` is not re-sent per
    item) and runs items one at a time; at most `2 × workers` items are in flight, and results
    are yielded in item order, so a run killed part-way has appended a prefix of the records.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        if workers is not None and workers < 1:
            raise UsageError(f"--workers needs at least 1 worker, got {workers}.")
        self.address = address
        self.workers = workers
        self._started_here = False

    def _ray(self):
        try:
            import ray
        except ImportError:
            raise UsageError(
                "--executor ray needs Ray: pip install -e '.[dist]' (or use --executor inprocess)."
            ) from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
            if self.address is not None:
                kwargs["address"] = self.address
            elif self.workers is not None:
                kwargs["num_cpus"] = self.workers
            try:
                ray.init(**kwargs)
            except ConnectionError as err:
                raise UsageError(f"cannot reach the Ray cluster at {self.address}: {err}") from None
            self._started_here = True
        return ray

    def _pool_size(self, ray) -> int:
        if self.workers is not None:
            return self.workers
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        ray = self._ray()
        worker_cls = ray.remote(num_cpus=1)(_Worker)
        fn_ref = ray.put(fn)
        actors = [worker_cls.remote(fn_ref) for _ in range(self._pool_size(ray))]
        window = 2 * len(actors)
        pending: collections.deque = collections.deque()
        try:
            for i, item in enumerate(items):
                pending.append(actors[i % len(actors)].run.remote(item))
                if len(pending) >= window:
                    yield ray.get(pending.popleft())
            while pending:
                yield ray.get(pending.popleft())
        finally:
            for actor in actors:  # also drops the tasks still in flight
                ray.kill(actor)

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False


class _Worker:
    """A Ray actor holding the work function; one thread of torch per worker (no oversubscription)."""

    def __init__(self, fn):
        import sys

        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        self.fn = fn

    def run(self, item):
        return self.fn(item)


def make_executor(
    kind: ExecutorKind | str = ExecutorKind.INPROCESS,
    address: str | None = None,
    workers: int | None = None,
) -> Executor:
    """The executor a run asked for (`--executor`, `--address`, `--workers`)."""
    kind = ExecutorKind(kind)
    if kind is ExecutorKind.INPROCESS:
        if address is not None:
            raise UsageError("--address names a Ray cluster; add --executor ray.")
        return InProcessExecutor()
    return RayExecutor(address=address, workers=workers)
