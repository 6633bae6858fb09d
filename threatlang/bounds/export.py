"""Capture what a model computes with ``torch.export`` (non-strict, decomposed to core ATen).

``torch.export`` runs the user's ``forward`` as written — forward hooks included — and records
one functional graph: in-place ops and aliasing are functionalised, ``F.dropout(training=True)``
appears as ``native_dropout(train=True)``, and data-dependent control flow fails with a guard
error instead of silently taking the branch of one probe input. The batch dimension is
exported as dynamic, so one graph serves every batch size.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings

import torch
from torch import Tensor, nn

from .errors import CaptureError, UnsupportedOp

#: ops kept whole by the decomposition (their bound rules are tighter or keep rows apart:
#: core ATen writes a Linear over a 4-D tensor as a view that merges the batch dimension)
PRESERVED = ("linear", "matmul")


def _decompositions() -> dict:
    table = torch.export.default_decompositions()
    for name in PRESERVED:
        table.pop(getattr(torch.ops.aten, name).default, None)
    return table


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line[:300]
    return type(err).__name__


def _user_frame(err: BaseException) -> str:
    """``file:line`` of the innermost frame outside torch in the error's traceback."""
    torch_dir = torch.__file__.rsplit("/", 1)[0]
    tb, where = err.__traceback__, ""
    while tb is not None:
        file = tb.tb_frame.f_code.co_filename
        if not file.startswith(torch_dir) and "threatlang/bounds" not in file:
            where = f"{file.rsplit('/', 1)[-1]}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


def example_input(example: Tensor) -> Tensor:
    """Two rows (torch.export specialises a dimension of size 0 or 1)."""
    x = example.detach()
    if x.shape[0] >= 2:
        return x[:2].clone()
    return x[:1].expand(2, *x.shape[1:]).clone()


def export_model(model: nn.Module, example: Tensor) -> torch.export.ExportedProgram:
    """The core-ATen program of ``model`` (in the mode it is in) on inputs shaped like
    ``example``; raises :class:`UnsupportedOp` with one sentence when it cannot be captured."""
    x = example_input(example)
    batch = torch.export.Dim.AUTO
    name = type(model).__name__
    sink = io.StringIO()
    quiet = logging.getLogger("torch")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            ep = torch.export.export(model, (x,), dynamic_shapes=({0: batch},), strict=False)
            ep = ep.run_decompositions(_decompositions())
    except UnsupportedOp:
        raise
    except Exception as err:  # torch.export raises many types for code it cannot capture
        where = _user_frame(err) or "its forward"
        first = _first_line(err)
        data_dependent = "data-dependent" in first or "guard" in first.lower()
        why = (
            "its output depends on a data-dependent branch or value, which one graph cannot "
            f"represent ({first})"
            if data_dependent
            else f"torch.export cannot capture the computation ({type(err).__name__}: {first})"
        )
        raise CaptureError(name, where, why) from None
    finally:
        quiet.setLevel(level)
    return ep
