"""Building or loading the model a spec names (builtin, state dict, TorchScript, Python)."""

from __future__ import annotations

import importlib

import torch
from torch import nn

from threatlang.errors import UsageError
from threatlang.ir.refs import ModelKind, ModelRef

from .config import ModelOptions
from .models import ARCHITECTURES


def build_model(
    ref: ModelRef,
    input_shape: tuple[int, ...],
    num_classes: int,
    opts: ModelOptions,
    allow_code: bool,
) -> nn.Module:
    if ref.kind is ModelKind.BUILTIN:
        return _builtin(ref.name, input_shape, num_classes, opts)
    if ref.kind is ModelKind.STATE_DICT:
        model = _builtin(ref.arch, input_shape, num_classes, opts)
        model.load_state_dict(torch.load(ref.name, map_location="cpu", weights_only=True))
        return model
    if ref.kind is ModelKind.TORCHSCRIPT:
        return torch.jit.load(ref.name, map_location="cpu")
    if ref.kind is ModelKind.PYTHON:
        if not allow_code:
            raise UsageError(f"model {ref.name!r} runs Python code: pass --allow-code to allow it")
        module, _, fn = ref.name.partition(":")
        return getattr(importlib.import_module(module), fn)()
    raise UsageError(f"the ibp backend cannot load {ref.kind.value} models; export to TorchScript")


def _builtin(
    name: str | None, input_shape: tuple[int, ...], num_classes: int, opts: ModelOptions
) -> nn.Module:
    if name not in ARCHITECTURES:
        raise UsageError(f"unknown architecture {name!r}; builtin: {', '.join(ARCHITECTURES)}")
    if len(input_shape) != 3:
        raise UsageError(f"builtin image models need (C, H, W) inputs, got {input_shape}")
    return ARCHITECTURES[name](tuple(input_shape), num_classes, opts.width)
