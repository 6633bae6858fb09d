"""A small CNN classifier trained with Gaussian noise augmentation, the base model of the
classic smoothed classifier (Cohen et al. 2019) that ``smooth classify`` certifies."""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NoisyTrainConfig", "smoothed_cnn", "train_noisy_classifier"]


def smoothed_cnn(input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> nn.Module:
    """Conv-conv-linear for ``(C, H, W)`` inputs (global pooling keeps any size working)."""
    c = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * width, num_classes),
    )  # fmt: skip


@attrs.frozen
class NoisyTrainConfig:
    epochs: int
    lr: float
    batch_size: int
    noise: float  # train on x + N(0, noise^2): the smoothing sigma, as Cohen et al. do
    seed: int = 0
    device: str = "cpu"


def train_noisy_classifier(
    model: nn.Module, x: np.ndarray, y: np.ndarray, cfg: NoisyTrainConfig
) -> nn.Module:
    gen = torch.Generator().manual_seed(cfg.seed)
    xs, ys = torch.from_numpy(x), torch.from_numpy(y)
    model = model.to(cfg.device).train()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(cfg.epochs):
        perm = torch.randperm(len(xs), generator=gen)
        for s in range(0, len(xs), cfg.batch_size):
            idx = perm[s : s + cfg.batch_size]
            xb = xs[idx] + cfg.noise * torch.randn(xs[idx].shape, generator=gen)
            loss = F.cross_entropy(model(xb.to(cfg.device)), ys[idx].to(cfg.device))
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
