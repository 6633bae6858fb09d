"""Where work items run: in this process (default) or on a Ray cluster (`--executor ray`).

A plan hands the executor a top-level function and per-example work items; results come back
in the order the items were given, so the same plan yields the same records on any executor.
Functions and items must be picklable for executors that leave the process.
"""

from __future__ import annotations

import collections
import enum
import logging
import sys
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
    """Runs items as Ray tasks: on an existing cluster (`address`) or a local one started here.

    `fn` is put in the object store once; each worker process unpickles it once (a model inside
    `fn` is not re-sent per item) and keeps it for the next items. At most `2 × workers` items
    are in flight, and results are yielded in item order, so a run killed part-way has appended
    a prefix of its records.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        device: str = "cpu",
        gpus_per_item: float = 1.0,  # a share (0, 1] lets tasks share a GPU
    ):
        if workers is not None and workers < 1:
            raise UsageError(f"--workers needs at least 1 worker, got {workers}.")
        if not (0 < gpus_per_item <= 1 or (gpus_per_item > 1 and gpus_per_item.is_integer())):
            raise UsageError(f"gpus per item must be in (0, 1] or whole, got {gpus_per_item}.")
        self.address = address
        self.workers = workers
        #: a run on a GPU asks Ray for one (or a share) per task; Ray then sets the task's
        #: CUDA_VISIBLE_DEVICES, so the plan's "cuda" names the GPU the task was given
        self.gpus = gpus_per_item if str(device).startswith("cuda") else 0.0
        self.used = False  # whether any plan sent work here (some backends loop in-process)
        self._started_here = False

    def _ray(self):
        try:
            import ray
        except ImportError:
            raise UsageError(
                "--executor ray needs Ray: pip install -e '.[dist]' (or use --executor inprocess)."
            ) from None
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "log_to_driver": False,
                "logging_level": logging.ERROR,  # Ray's start-up chatter is not the user's news
            }
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

    def _slots(self, ray) -> int:
        if self.workers is not None:
            return self.workers
        resources = ray.cluster_resources()
        if self.gpus:
            gpus = resources.get("GPU", 0)
            if gpus <= 0:
                raise UsageError(
                    "the run asks for --device cuda but the Ray cluster has no GPU; "
                    "start it with GPUs or run with --device cpu."
                )
            return max(1, int(gpus / self.gpus))
        return max(1, int(resources.get("CPU", 1)))

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> Iterator[R]:
        self.used = True
        ray = self._ray()
        task = ray.remote(num_cpus=1, num_gpus=self.gpus, max_retries=0)(_run_item)
        boxed_fn = [ray.put(fn)]  # boxed: the worker receives the reference, not the value
        window = 2 * self._slots(ray)
        pending: collections.deque = collections.deque()
        try:
            for item in items:
                pending.append(task.remote(boxed_fn, item))
                if len(pending) >= window:
                    yield _get(ray, pending.popleft())
            while pending:
                yield _get(ray, pending.popleft())
        finally:
            for ref in pending:
                ray.cancel(ref)

    def close(self) -> None:
        if self._started_here:
            import ray

            ray.shutdown()
            self._started_here = False


def _get(ray, ref):
    """The task's result; a failure inside the work function is re-raised as itself, so a run
    fails the same way on either executor."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:
        cause = getattr(err, "cause", None)
        if isinstance(cause, Exception):
            raise cause from None
        raise


#: In a Ray worker process: the last work function it unpickled, keyed by its object id, so a
#: run's model is deserialised once per worker rather than once per item.
_WORKER_FN: dict[str, Callable] = {}


def _run_item(boxed_fn, item):
    ref = boxed_fn[0]
    key = ref.hex()
    fn = _WORKER_FN.get(key)
    if fn is None:
        import ray

        fn = ray.get(ref)
        _WORKER_FN.clear()
        _WORKER_FN[key] = fn
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)  # one core per task: no oversubscription
    return fn(item)


def make_executor(
    kind: ExecutorKind | str = ExecutorKind.INPROCESS,
    address: str | None = None,
    workers: int | None = None,
    device: str = "cpu",
) -> Executor:
    """The executor a run asked for (`--executor`, `--address`, `--workers`); on a GPU run,
    Ray tasks request a GPU each."""
    kind = ExecutorKind(kind)
    if kind is ExecutorKind.INPROCESS:
        if address is not None:
            raise UsageError("--address names a Ray cluster; add --executor ray.")
        return InProcessExecutor()
    return RayExecutor(address=address, workers=workers, device=device)
