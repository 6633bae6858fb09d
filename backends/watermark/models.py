"""A small ResNet-style classifier for watermark experiments on 2 CPU cores.

The chapter uses ResNet-18 with batch norm. Here normalisation is GroupNorm: it has no running
statistics, behaves the same in train and eval mode, and is vmap-friendly, so the noisy trigger
steps and the certification can batch parameter-noise draws with ``torch.func.vmap``. Like batch
norm it makes every convolution scale invariant, which is what lets a network absorb parameter
noise of a fixed σ by growing its weights.
"""

from __future__ import annotations

import torch
from torch import nn


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=min(4, channels), num_channels=channels)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = _norm(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _norm(c_out)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Stem, two residual stages (the second downsamples), global average pool, linear head."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False), _norm(width), nn.ReLU()
        )
        self.stage1 = BasicBlock(width, width)
        self.stage2 = BasicBlock(width, 2 * width, stride=2)
        self.head = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.stage2(self.stage1(self.stem(x)))
        return self.head(out.mean(dim=(2, 3)))


def small_resnet(
    input_shape: tuple[int, ...] = (1, 8, 8), num_classes: int = 10, width: int = 16
) -> SmallResNet:
    """Builtin architecture ``small_resnet`` for inputs of shape ``(C, H, W)``."""
    return SmallResNet(in_channels=input_shape[0], num_classes=num_classes, width=width)
