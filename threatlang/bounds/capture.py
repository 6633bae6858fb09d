"""Capture the computation a model performs and lower it to a :class:`BoundGraph`.

``torch.export`` records what ``forward`` computes (:mod:`.export`); the registry of lowering
rules turns each core-ATen op into a bound op (:mod:`.lower`, :mod:`.rules`). An op with no
sound rule raises :class:`UnsupportedOp` naming the op, its module path and source line.
Whatever is captured is still checked against the model before a certificate is issued
(:mod:`.validate`): capture proposes, validation disposes.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from . import rules as _rules  # noqa: F401  (registers the built-in lowering rules)
from . import rules_more as _rules_more  # noqa: F401
from . import softmax as _softmax  # noqa: F401
from .dag import BoundGraph
from .export import export_model
from .lower import Lowering

_Key = tuple[tuple[int, ...], torch.dtype, tuple[bool, ...]]

#: captured graphs per model and input signature: a memo of a pure function (the graph reads
#: parameters live, and every use is validated against the model anyway)
_MEMO: weakref.WeakKeyDictionary[nn.Module, dict[_Key, BoundGraph]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Tensors a ``forward`` creates without a dtype follow the input's floating dtype while
    capturing (a float64 copy of a model that builds ``torch.ones(k)`` stays float64)."""
    prev = torch.get_default_dtype()
    if dtype.is_floating_point and dtype in (torch.float32, torch.float64):
        torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(prev)


def _modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    return [(m, m.training) for m in model.modules()]


def capture(model: nn.Module, example: Tensor) -> BoundGraph:
    """The bound graph of ``model``'s eval-mode ``forward`` on inputs shaped like ``example``
    (any batch size; the rows of ``example`` are only used to trace)."""
    modes = _modes(model)
    model.eval()
    try:
        key: _Key = (tuple(example.shape[1:]), example.dtype, tuple(m.training for m, _ in modes))
        memo = _MEMO.setdefault(model, {})
        if key not in memo:
            with _default_dtype(example.dtype):
                ep = export_model(model, example)
                memo[key] = Lowering(ep, model).run()
        return memo[key]
    finally:
        for m, mode in modes:
            m.training = mode
