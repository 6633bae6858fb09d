"""What a caller hands to `threatlang.run(model=..., data=...)`, checked before anything runs.

A model must be a `torch.nn.Module` with real (not meta-device) weights whose output is one
tensor; data must be finite in size: a `Dataset` or `DataLoader` without a length, or with
more than `MAX_ITEMS` examples, is read only up to the spec's `test_limit` (`train_limit` for
a train split), else refused. Every problem is one `UsageError` sentence.
"""

from __future__ import annotations

import itertools
from typing import Any

from .errors import UsageError

#: most examples read from a caller's Dataset/DataLoader without a limit in the spec
MAX_ITEMS = 1_000_000


def check_model(model: Any, probe_shape: tuple[int, ...] | None) -> None:
    """`UsageError` unless `model` is a Module with data in its weights that returns a tensor
    on a zero input of `probe_shape` (probe skipped when None, or when the model itself fails
    on zeros: that failure is the backend's to report)."""
    import torch

    if not isinstance(model, torch.nn.Module):
        what = "a function" if callable(model) else f"a {type(model).__name__}"
        raise UsageError(
            f"model= takes a torch.nn.Module; got {what}. Wrap it in an nn.Module, or leave "
            "model= out and name the model in the spec."
        )
    tensors = itertools.chain(model.parameters(), model.buffers())
    if any(t.is_meta for t in tensors):
        raise UsageError(
            "model= has weights on the meta device (shapes without values); load real weights "
            "(e.g. model.to_empty(device='cpu') then load_state_dict) before running it."
        )
    if probe_shape is None:
        return
    training = model.training
    model.eval()  # no batch-norm statistics change, no dropout
    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *probe_shape)))
    except Exception:  # noqa: BLE001 - the run reports the model's own failure in context
        return
    finally:
        model.train(training)
    if not isinstance(out, torch.Tensor):
        raise UsageError(
            f"model= returns a {type(out).__name__}, not a tensor of outputs; wrap it in a "
            "Module whose forward returns the logits tensor."
        )


def bounded_data(data: Any, test_limit: int | None, train_limit: int | None) -> Any:
    """`data` with every Dataset/DataLoader cut to the split's limit, or refused when it has
    no length (or a length past `MAX_ITEMS`) and no limit."""
    if isinstance(data, dict):
        limits = {"test": test_limit, "train": train_limit}
        return {k: _bounded(v, limits.get(k), k) for k, v in data.items()}
    return _bounded(data, test_limit, "data")


def _bounded(d: Any, limit: int | None, what: str) -> Any:
    from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

    if not isinstance(d, DataLoader | Dataset):
        return d
    size = _size(d)
    if limit is not None:
        if isinstance(d, Dataset) and not isinstance(d, IterableDataset) and size is not None:
            return Subset(d, range(min(size, limit)))
        items = _first_items(d, limit, what)
        return Subset(items, range(len(items)))  # a list read as a map-style Dataset
    if size is None:
        raise UsageError(
            f"data= ({what}) is a {type(d).__name__} without a length, which may never end; "
            "set test_limit in the spec's data block, or pass a sized Dataset."
        )
    if size > MAX_ITEMS:
        raise UsageError(
            f"data= ({what}) holds {size:,} examples, past the {MAX_ITEMS:,} read without a "
            "limit; set test_limit in the spec's data block, or pass a Subset."
        )
    return d


def _size(d: Any) -> int | None:
    """Examples in `d` (a DataLoader counts batches times batch size), or None if unknown."""
    from torch.utils.data import DataLoader

    try:
        n = len(d)
    except TypeError:
        return None
    if isinstance(d, DataLoader):
        return n * (d.batch_size or 1)
    return n


def _first_items(d: Any, limit: int, what: str) -> list:
    """The first `limit` (input, label) examples of a DataLoader (batches split) or dataset."""
    from torch.utils.data import DataLoader

    batched = isinstance(d, DataLoader) and d.batch_size is not None
    out: list = []
    for item in d:
        if not isinstance(item, tuple | list) or len(item) < 2:
            raise UsageError(f"{what}: each item must be an (input, label) pair.")
        pairs = zip(item[0], item[1], strict=False) if batched else [(item[0], item[1])]
        for pair in pairs:
            out.append(pair)
            if len(out) >= limit:
                return out
    return out
