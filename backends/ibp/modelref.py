"""The model a spec names, loaded by the project's shared loader (`threatlang.models_io`).

Builtin names resolve to :mod:`.models` through the backend's ``architectures`` map, and the
``model { width w }`` option reaches the builder as its ``width`` keyword; ONNX and TorchScript
files come back as plain layers the bound engine reads, relative paths beside the spec file.
"""

from __future__ import annotations

from torch import nn

from threatlang.ir.refs import ModelRef
from threatlang.models_io import load_model


def build_model(
    ref: ModelRef,
    input_shape: tuple[int, ...],
    num_classes: int,
    allow_code: bool,
    device: str = "cpu",
) -> nn.Module:
    """The `nn.Module` `ref` names, on `device` (builtins draw weights from torch's global RNG,
    which the caller seeds)."""
    return load_model(
        ref, tuple(input_shape), num_classes, allow_code=allow_code, device=str(device)
    )
