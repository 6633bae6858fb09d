"""A small CNN classifier trained with Gaussian noise augmentation, the base model of the
classic smoothed classifier (Cohen et al. 2019) that ``smooth classify`` certifies."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import NoisyTraining

__all__ = ["smoothed_cnn", "train_noisy_classifier"]


def smoothed_cnn(input_shape: tuple[int, ...], num_classes: int, width: int = 32) -> nn.Module:
    """Conv-conv-linear for ``(C, H, W)`` inputs (global pooling keeps any size working)."""
    c = input_shape[0]
    return nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1), nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(8 * width, num_classes),
    )  # fmt: skip


def train_noisy_classifier(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    training: NoisyTraining,
    generator: torch.Generator,
) -> nn.Module:
    """Adam on ``x + N(0, noise^2)``. The data moves to the generator's device once; shuffling
    and noise are drawn there, so no batch is drawn on the host and copied (GPU-ready)."""
    device = generator.device
    xs, ys = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
    model = model.to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=training.lr)
    for _ in range(training.epochs):
        perm = torch.randperm(len(xs), generator=generator, device=device)
        for s in range(0, len(xs), training.batch_size):
            idx = perm[s : s + training.batch_size]
            xb = xs[idx]
            noise = torch.randn(xb.shape, generator=generator, device=device, dtype=xb.dtype)
            loss = F.cross_entropy(model(xb + training.noise * noise), ys[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()
