"""TorchScript → plain `nn.Sequential`, so the bound engines can see the layers.

A scripted `nn.Sequential` of standard layers keeps each child's type name and parameters; we
rebuild the same layers in eager mode and check the rebuilt network gives the same outputs.
Anything else stays a ScriptModule (it still runs; backends that need layers say `unknown`).
"""

from __future__ import annotations

import torch
from torch import nn


def _rebuild(m) -> nn.Module | None:
    kind = getattr(m, "original_name", type(m).__name__)
    if kind == "Sequential":
        children = [_rebuild(c) for _, c in m.named_children()]
        return None if any(c is None for c in children) else nn.Sequential(*children)
    simple = {"ReLU": nn.ReLU, "Identity": nn.Identity, "Dropout": nn.Identity}
    if kind in simple:
        return simple[kind]()
    if kind == "Flatten":
        return nn.Flatten(m.start_dim, m.end_dim)
    if kind == "Linear":
        layer = nn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
    elif kind == "Conv2d":
        if m.padding_mode != "zeros":
            return None
        layer = nn.Conv2d(
            m.in_channels,
            m.out_channels,
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            m.groups,
            bias=m.bias is not None,
        )
    elif kind in ("AvgPool2d", "MaxPool2d"):
        return _pool(kind, m)
    elif kind in ("BatchNorm1d", "BatchNorm2d"):
        layer = getattr(nn, kind)(m.num_features, eps=m.eps)
    else:
        return None
    layer.load_state_dict(m.state_dict())
    return layer


def _pool(kind, m):
    if kind == "MaxPool2d":
        return nn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode)
    return nn.AvgPool2d(
        m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override
    )


def unscript(scripted: torch.jit.ScriptModule, input_shape=None) -> nn.Module:
    """An eager copy of `scripted` when it is a Sequential of standard layers and (given an
    input shape) computes the same outputs; else `scripted` itself."""
    try:
        rebuilt = _rebuild(scripted)
    except (AttributeError, RuntimeError):
        rebuilt = None
    if rebuilt is None:
        return scripted
    rebuilt.eval()
    if input_shape is not None:
        x = torch.rand((2, *input_shape), generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            if not torch.allclose(scripted(x), rebuilt(x), rtol=1e-5, atol=1e-6):
                return scripted
    return rebuilt
