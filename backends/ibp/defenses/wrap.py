"""A classifier behind a preprocessing defence, with a choice of backward pass for attacks."""

from __future__ import annotations

import enum

from torch import Tensor, nn


class GradientMode(enum.Enum):
    """How gradients cross the defence (the forward value is always the exact defence).

    ``EXACT``: autograd through the transform (LGS's smoothing; DW's mask is constant).
    ``BPDA``: identity backward (Athalye et al. 2018), ``x + (t(x) - x).detach()``.
    """

    EXACT = "exact"
    BPDA = "bpda"


class Defended(nn.Module):
    """``model(transform(x))``; ``mode`` only changes gradients, never predictions."""

    def __init__(
        self, transform: nn.Module, model: nn.Module, mode: GradientMode = GradientMode.EXACT
    ) -> None:
        super().__init__()
        self.transform = transform
        self.model = model
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        t = self.transform(x)
        if self.mode is GradientMode.BPDA:
            t = x + (t - x).detach()
        return self.model(t)
