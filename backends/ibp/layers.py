"""Torch modules the bound engine understands beyond ``torch.nn`` (residual blocks)."""

from __future__ import annotations

from torch import Tensor, nn


class Residual(nn.Module):
    """``body(x) + shortcut(x)``; the shortcut defaults to the identity."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None = None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut if shortcut is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x) + self.shortcut(x)
