"""The run scaffolding every backend shares: data, seeded models, random streams, timings.

A backend keeps only its science; what a run needs around it comes from here, through the
`RunContext` (`ctx.splits(spec)`, `ctx.generator(...)`, `ctx.build_model(...)`,
`ctx.timings`, `ctx.checkpoint(...)`):

- **Data**: the caller's (tensors, a `(x, y)` pair, a `Dataset`, a `DataLoader`, a
  `DataSplits`) or the spec's `data` reference — one conversion, one error sentence.
- **One RNG policy**: every random stream is an explicit `torch.Generator` seeded from the run
  seed and a stream name (stable across processes and Python versions), made on the device
  that draws from it. Module initialisation, which uses torch's global RNG, runs inside
  `fork_rng` with a derived seed, so nothing leaks into or out of the global state.
- **Stage timings that survive a resume**: a stage's seconds are recorded (atomically, in
  `timings.json`) when measured; a resumed run that loads a checkpoint reports the seconds
  the first run measured, never the time it took to load.

torch is imported inside the functions that need it: the language core stays light.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

from .errors import UsageError

TIMINGS_FILE = "timings.json"


def stream_seed(seed: int, stream: str | int) -> int:
    """A 63-bit seed for the named random stream of a run with `seed` (stable everywhere)."""
    digest = hashlib.blake2b(f"{seed}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def generator(seed: int, stream: str | int, device: Any = "cpu"):
    """An explicit generator for one stream, on the device whose kernels draw from it."""
    import torch

    return torch.Generator(device=torch.device(device)).manual_seed(stream_seed(seed, stream))


def build_model(seed: int, stream: str, build: Callable[[], Any], device: Any = "cpu"):
    """`build()` (which initialises weights with torch's global RNG) under a derived seed,
    confined with `fork_rng` so the caller's global RNG state is untouched; placed on `device`."""
    import torch

    devices = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(stream_seed(seed, stream))
        model = build()
    return model.to(device)


# ----------------------------------------------------------------------------- timings
@attrs.define
class StageTimings:
    """Seconds per stage, persisted in the run directory the moment a stage finishes."""

    path: Path | None
    seconds: dict[str, float] = attrs.field(factory=dict)

    @classmethod
    def open(cls, out_dir: Path | None, resume: bool) -> StageTimings:
        path = None if out_dir is None else Path(out_dir) / TIMINGS_FILE
        seconds: dict[str, float] = {}
        if resume and path is not None and path.exists():
            try:
                seconds = {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
            except (ValueError, AttributeError) as err:
                raise UsageError(
                    f"{path} is not a timings file ({err}); remove it or start a fresh run."
                ) from None
        return cls(path, seconds)

    @contextlib.contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Time the block and record it (only when it completes)."""
        start = time.perf_counter()
        yield
        self.record(stage, time.perf_counter() - start)

    def record(self, stage: str, seconds: float) -> None:
        self.seconds[stage] = float(seconds)
        if self.path is not None:
            _atomic_json(self.path, self.seconds)

    def get(self, stage: str) -> float | None:
        """The recorded seconds of `stage` (this run's or, after a resume, the first run's)."""
        return self.seconds.get(stage)


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ------------------------------------------------------------------------ checkpoints
def checkpoint(
    out_dir: Path,
    timings: StageTimings,
    resume: bool,
    name: str,
    model: Any,
    train: Callable[[], Any],
    stage: str = "train",
) -> tuple[Any, bool]:
    """Train `model` with `train()` and save its weights as `name`, or — on resume, when the
    checkpoint exists — load them instead. Returns (whatever `train()` returned or None,
    loaded?). The stage's seconds are measured only when it really trains."""
    import torch

    path = Path(out_dir) / name
    if resume and path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as err:  # a torn or foreign file: say so, never train over it silently
            raise UsageError(
                f"cannot resume from checkpoint {path} ({type(err).__name__}: {err}); "
                "remove it to retrain, or start a fresh run with --overwrite."
            ) from None
        return None, True
    with timings.measure(stage):
        result = train()
    save_weights(model, path)
    return result, False


def save_weights(model: Any, path: Path) -> None:
    """Write `model`'s state dict to `path` atomically (a temporary file, then a rename).

    `torch.save` reports a full disk as a `RuntimeError` (its stream writer's "file write
    failed", "iostream error", "unexpected pos"), not an `OSError`; either way the half-written file is removed and the user gets one sentence,
    wherever the file lives (run directory or a cache)."""
    import torch

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:
        with contextlib.suppress(OSError):
            tmp.unlink()
        full = isinstance(err, RuntimeError) or err.errno in (errno.ENOSPC, errno.EDQUOT)
        advice = (
            "the disk may be full: free some space" if full else "check that its folder is writable"
        )
        raise UsageError(
            f"could not write the weights {path} ({_first_line(err)}); {advice} and rerun "
            "with --resume (the records written so far are kept)."
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


# ------------------------------------------------------------------------------- data
def splits_from(data: Any, spec: Any, seed: int):
    """`DataSplits` from the caller's data, or from the spec's `data` reference.

    The caller may hand over a `DataSplits`; a mapping {"train": D, "test": D}; a single
    dataset D used as the test split (enough to certify a pretrained model); where each D is
    a `(x, y)` pair of tensors/arrays, a torch `Dataset` of (x, y) items or a `DataLoader`.
    """
    from .data.splits import DataSplits

    if data is None:
        if spec.data is None:
            raise UsageError(
                f"spec '{spec.name}' has no `data` statement and no data was handed to run(); "
                "add e.g. `data digits`, or pass data=(x, y) / a Dataset / a DataLoader."
            )
        from .data import load_dataset

        return load_dataset(spec.data, seed)
    if isinstance(data, DataSplits):
        return data
    if isinstance(data, dict):
        unknown = set(data) - {"train", "test"}
        if unknown or "test" not in data:
            raise UsageError(
                "data= as a mapping takes the keys 'train' (optional) and 'test'; "
                f"got {sorted(data)}."
            )
        test = _arrays(data["test"], "test")
        train = _arrays(data["train"], "train") if "train" in data else _empty_like(test)
    else:
        test = _arrays(data, "data")
        train = _empty_like(test)
    labels = [int(d.y.max()) for d in (train, test) if len(d)]
    return DataSplits("user", train, test, max(labels) + 1 if labels else 0)


def _arrays(d: Any, what: str):
    import numpy as np

    from .data.files import check_finite, check_labels
    from .data.splits import ArrayDataset

    x, y = _xy(d, what)
    x = np.asarray(x, dtype=np.float32)
    y = check_labels(f"data= ({what})", "labels", np.asarray(y))
    if len(y) != len(x):
        raise UsageError(f"{what}: {len(y)} labels for {len(x)} inputs; give one label each.")
    check_finite(f"data= ({what})", "inputs", x)
    return ArrayDataset(x, y)


def _xy(d: Any, what: str):
    import numpy as np
    from torch.utils.data import DataLoader, Dataset

    if isinstance(d, tuple | list) and len(d) == 2:
        x, y = d
        return _np(x), _np(y)
    if isinstance(d, DataLoader | Dataset):
        xs, ys = [], []
        items = d if isinstance(d, DataLoader) else (d[i] for i in range(len(d)))
        for item in items:
            if not isinstance(item, tuple | list) or len(item) < 2:
                raise UsageError(f"{what}: each item must be an (input, label) pair.")
            x, y = item[0], item[1]
            batched = isinstance(d, DataLoader)
            xs.append(_np(x) if batched else _np(x)[None])
            ys.append(np.atleast_1d(_np(y)))
        if not xs:
            raise UsageError(f"{what}: the dataset is empty.")
        return np.concatenate(xs), np.concatenate(ys)
    raise UsageError(
        f"{what}: expected (x, y) tensors, a torch Dataset or a DataLoader, got {type(d).__name__}."
    )


def _np(v: Any):
    import numpy as np

    if hasattr(v, "detach"):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def _empty_like(d):
    from .data.splits import ArrayDataset

    return ArrayDataset(d.x[:0], d.y[:0])


__all__ = [
    "StageTimings",
    "build_model",
    "checkpoint",
    "generator",
    "splits_from",
    "stream_seed",
]
