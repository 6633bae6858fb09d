"""Tiny models and data shared by the advtrain tests."""

import torch
from torch import nn

from threatlang.backends.advtrain.vit import ViT, ViTConfig


def tiny_vit(seed: int = 0, channels: int = 1, size: int = 8) -> ViT:
    cfg = ViTConfig(image_size=(size, size), patch_size=4, in_channels=channels, num_classes=3,
                    dim=16, depth=1, heads=2)  # fmt: skip
    model = ViT(cfg, torch.Generator().manual_seed(seed))
    with torch.no_grad():  # the zero-initialised head would give zero input gradients
        model.head.weight.copy_(
            torch.randn(model.head.weight.shape, generator=torch.Generator().manual_seed(seed))
        )
    return model


def linear(seed: int = 0, shape=(1, 8, 8), classes: int = 3) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(shape).prod()), classes))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return model


def batch(n: int = 6, shape=(1, 8, 8), classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, *shape), generator=g), torch.randint(0, classes, (n,), generator=g)
