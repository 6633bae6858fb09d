"""A converted graph that is a chain of steps becomes an `nn.Sequential` of plain layers.

Runs of elementwise constant arithmetic (input normalisation: Sub/Div by constants) are merged
into one map ``y = a * x + b`` and emitted as layers every backend handles: folded into the
Linear before them, or a diagonal Linear (flat data), a depthwise 1x1 Conv2d (per-channel
constants on images), or a Flatten + diagonal Linear + reshape back (small per-element
constants). Larger per-element maps stay elementwise steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .onnx_convert import Step
from .onnx_layers import Elementwise, Reshape, Unary

#: per-element maps up to this many elements become a diagonal Linear; beyond, the weights
#: would dwarf the network
_DIAGONAL_LIMIT = 1024


def is_chain(steps: Sequence[Step], output: int) -> bool:
    return output == len(steps) and all(s.inputs == (k,) for k, s in enumerate(steps))


def _affine(step: Step, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(a, b) with ``step(x) = a * x + b`` per element, when the step is constant arithmetic
    that keeps the shape; else None."""
    m = step.module
    if step.shape != shape:
        return None
    one = torch.ones(shape, dtype=torch.float64)
    if isinstance(m, Unary) and m.fn is torch.neg:
        return -one, torch.zeros(shape, dtype=torch.float64)
    if not isinstance(m, Elementwise) or len(m.order) != 2:
        return None
    first, second = m.constant(0), m.constant(1)
    if (first is None) == (second is None):
        return None
    c = first if second is None else second
    if m.fn not in (torch.add, torch.sub, torch.mul, torch.div) or not c.is_floating_point():
        return None
    try:
        c = torch.broadcast_to(c.double(), shape)
    except RuntimeError:  # the constant is larger than the data: not an elementwise map
        return None
    data_first = first is None
    if m.fn is torch.add:
        return one, c
    if m.fn is torch.sub:
        return (one, -c) if data_first else (-one, c)
    if m.fn is torch.mul:
        return c, torch.zeros_like(c)
    if m.fn is torch.div and data_first:
        return 1.0 / c, torch.zeros_like(c)
    return None


def _diagonal(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype) -> nn.Linear:
    layer = nn.Linear(a.numel(), a.numel())
    layer.weight = nn.Parameter(torch.diag(a.flatten()).to(dtype), requires_grad=False)
    layer.bias = nn.Parameter(b.flatten().to(dtype), requires_grad=False)
    return layer


def _emit_affine(layers: list[nn.Module], a, b, originals: list[nn.Module], nxt, dtype) -> None:
    if a.dim() == 1 and layers and isinstance(layers[-1], nn.Linear):
        last = layers[-1]
        weight = last.weight.double()
        bias = last.bias.double() if last.bias is not None else torch.zeros_like(a)
        merged = nn.Linear(last.in_features, last.out_features)
        merged.weight = nn.Parameter((a[:, None] * weight).to(dtype), requires_grad=False)
        merged.bias = nn.Parameter((a * bias + b).to(dtype), requires_grad=False)
        layers[-1] = merged
    elif a.dim() == 1 and a.numel() <= _DIAGONAL_LIMIT:
        layers.append(_diagonal(a, b, dtype))
    elif a.dim() == 3 and all(bool((t == t[:, :1, :1]).all()) for t in (a, b)):
        channels = a.shape[0]
        conv = nn.Conv2d(channels, channels, 1, groups=channels)
        conv.weight = nn.Parameter(a[:, 0, 0].reshape(channels, 1, 1, 1).to(dtype), False)
        conv.bias = nn.Parameter(b[:, 0, 0].to(dtype), requires_grad=False)
        layers.append(conv)
    elif a.numel() <= _DIAGONAL_LIMIT:
        layers += [nn.Flatten(), _diagonal(a, b, dtype)]
        if not isinstance(nxt, nn.Flatten):
            layers.append(Reshape(a.shape))
    else:
        layers += originals


def as_sequential(
    steps: Sequence[Step], input_shape: tuple[int, ...], dtype: torch.dtype
) -> nn.Sequential:
    """The chain ``steps`` (see `is_chain`) as an `nn.Sequential`, constant arithmetic merged
    into layers of ``dtype`` (the network's float type)."""
    layers: list[nn.Module] = []
    a = b = None
    pending: list[nn.Module] = []
    shape = input_shape
    for step in steps:
        ab = _affine(step, shape)
        if ab is not None:
            a = ab[0] if a is None else ab[0] * a
            b = ab[1] if b is None else ab[0] * b + ab[1]
            pending.append(step.module)
        else:
            if a is not None:
                _emit_affine(layers, a, b, pending, step.module, dtype)
                a = b = None
                pending = []
            layers.append(step.module)
        shape = step.shape
    if a is not None:
        _emit_affine(layers, a, b, pending, None, dtype)
    return nn.Sequential(*layers).eval()
