"""Builtin architectures of the landscape backend: ``builder(input_shape, num_classes, **opts)``."""

from __future__ import annotations

import math

from torch import nn

from .models import lenet, mlp


def mlp_small(
    input_shape: tuple[int, ...],
    num_classes: int,
    hidden: int | tuple[int, ...] = 16,
    width: float = 1.0,
) -> nn.Module:
    """A one-hidden-layer MLP (``hidden 0`` or ``hidden []`` gives Table 7.2's linear model);
    ``width`` scales every hidden layer (Table 7.6's width study)."""
    widths = tuple(hidden) if isinstance(hidden, tuple | list) else ((hidden,) if hidden else ())
    widths = tuple(max(1, round(h * float(width))) for h in widths)
    return mlp(math.prod(input_shape), widths, num_classes)


def lenet_tiny(input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> nn.Module:
    """LeNet in miniature for square images; ``width`` scales every layer (Table 7.6)."""
    channels, side = input_shape[0], input_shape[-1]
    return lenet(channels, side, num_classes, width=float(width))
