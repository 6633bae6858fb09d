"""Train the synthetic-scene detector and its denoiser on 2 CPU cores in about a minute.

Seeded end to end (the run's ``torch.Generator`` for shuffling and noise, on the device that
trains; the scene seed for data); no global RNG.  The detector is trained on clean scenes only (§3.6 smooths a detector that was
never trained under noise); the denoiser on scenes plus ``N(0, sigma^2)`` noise.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..config import DetectorTraining
from .models import DnCNN, TinyDetector
from .scenes import Scenes

__all__ = ["detector_targets", "train_denoiser", "train_detector"]


def detector_targets(
    scenes: Scenes, idx: np.ndarray, grid: int, stride: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Objectness ``(B, g, g)``, class ``(B, g, g)``, box ``(B, g, g, 4)`` and positive mask."""
    b = len(idx)
    obj = torch.zeros(b, grid, grid)
    cls = torch.zeros(b, grid, grid, dtype=torch.long)
    box = torch.zeros(b, grid, grid, 4)
    for row, i in enumerate(idx):
        for bx, lab in zip(scenes.boxes[i], scenes.labels[i], strict=True):
            cx, cy = (bx[0] + bx[2]) / 2, (bx[1] + bx[3]) / 2
            gx, gy = min(int(cx // stride), grid - 1), min(int(cy // stride), grid - 1)
            obj[row, gy, gx] = 1.0
            cls[row, gy, gx] = int(lab)
            box[row, gy, gx] = torch.from_numpy(bx.astype(np.float32))
    return obj, cls, box, obj > 0


def _batches(n: int, epochs: int, batch_size: int, generator: torch.Generator):
    """Shuffled index batches, drawn on the generator's device (no host round trip)."""
    for _ in range(epochs):
        perm = torch.randperm(n, generator=generator, device=generator.device)
        yield from perm.split(batch_size)


def train_detector(
    model: TinyDetector, scenes: Scenes, training: DetectorTraining, generator: torch.Generator
) -> TinyDetector:
    """One-cycle Adam on the scenes (plus noise ``s ~ U(0, noise_max)`` when set). Images and
    targets move to the generator's device once; noise is drawn there, batch by batch."""
    device = generator.device
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=training.lr)
    images = torch.from_numpy(scenes.images).to(device)
    grid = images.shape[-1] // model.stride
    every = np.arange(len(scenes))
    obj, cls, box, pos = (t.to(device) for t in detector_targets(scenes, every, grid, 4))
    steps = training.epochs * -(-len(scenes) // training.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=training.lr, total_steps=steps)
    model.train()
    for idx in _batches(len(scenes), training.epochs, training.batch_size, generator):
        x = images[idx]
        if training.noise_max > 0:
            s = training.noise_max * torch.rand(
                (len(idx), 1, 1, 1), generator=generator, device=device
            )
            x = x + s * torch.randn(x.shape, generator=generator, device=device)
        raw = model.raw(x)
        p = pos[idx]
        loss = F.binary_cross_entropy_with_logits(raw[:, 0], obj[idx])
        if p.any():
            logits = raw[:, 5:].permute(0, 2, 3, 1)[p]
            loss = loss + F.cross_entropy(logits, cls[idx][p])
            pred = model.boxes_from_raw(raw).reshape(*p.shape, 4)[p]
            loss = loss + F.smooth_l1_loss(pred / 4, box[idx][p] / 4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def train_denoiser(
    model: DnCNN,
    scenes: Scenes,
    sigma: float,
    training: DetectorTraining,
    generator: torch.Generator,
) -> DnCNN:
    """MSE between the DnCNN's output on ``x + N(0, sigma^2)`` and ``x``, noise drawn on the
    generator's device."""
    device = generator.device
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=training.lr)
    images = torch.from_numpy(scenes.images).to(device)
    model.train()
    batches = _batches(len(scenes), training.denoiser_epochs, training.batch_size, generator)
    for idx in batches:
        x = images[idx]
        noisy = x + sigma * torch.randn(x.shape, generator=generator, device=device)
        loss = F.mse_loss(model(noisy), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
