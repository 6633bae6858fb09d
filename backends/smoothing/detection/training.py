"""Train the synthetic-scene detector and its denoiser on 2 CPU cores in about a minute.

Seeded end to end (a ``torch.Generator`` for shuffling and noise, the scene seed for data);
no global RNG.  The detector is trained on clean scenes only (§3.6 smooths a detector that was
never trained under noise); the denoiser on scenes plus ``N(0, sigma^2)`` noise.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F

from .models import DnCNN, TinyDetector
from .scenes import Scenes

__all__ = ["TrainConfig", "detector_targets", "train_denoiser", "train_detector"]


@attrs.frozen
class TrainConfig:
    epochs: int = 12
    batch_size: int = 64
    lr: float = 3e-3
    seed: int = 0
    device: str = "cpu"
    # detector only: train on x + N(0, s^2), s ~ U(0, noise_max), so that the small artefacts a
    # denoiser leaves behind do not throw it off (0 = clean training, as in §3.6)
    noise_max: float = 0.0


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


def _batches(n: int, cfg: TrainConfig, gen: torch.Generator):
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=gen).numpy()
        for start in range(0, n, cfg.batch_size):
            yield perm[start : start + cfg.batch_size]


def train_detector(scenes: Scenes, cfg: TrainConfig, num_classes: int = 3) -> TinyDetector:
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)  # parameter init only; nothing else draws from the global RNG
    model = TinyDetector(num_classes=num_classes).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    images = torch.from_numpy(scenes.images)
    grid = images.shape[-1] // model.stride
    steps = cfg.epochs * -(-len(scenes) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=steps)
    model.train()
    for idx in _batches(len(scenes), cfg, gen):
        x = images[idx]
        if cfg.noise_max > 0:
            s = cfg.noise_max * torch.rand((len(idx), 1, 1, 1), generator=gen)
            x = x + s * torch.randn(x.shape, generator=gen)
        x = x.to(cfg.device)
        obj, cls, box, pos = (t.to(cfg.device) for t in detector_targets(scenes, idx, grid, 4))
        raw = model.raw(x)
        loss = F.binary_cross_entropy_with_logits(raw[:, 0], obj)
        if pos.any():
            logits = raw[:, 5:].permute(0, 2, 3, 1)[pos]
            loss = loss + F.cross_entropy(logits, cls[pos])
            pred = model.boxes_from_raw(raw).reshape(*pos.shape, 4)[pos]
            loss = loss + F.smooth_l1_loss(pred / 4, box[pos] / 4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def train_denoiser(scenes: Scenes, sigma: float, cfg: TrainConfig) -> DnCNN:
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    torch.manual_seed(cfg.seed + 1)
    model = DnCNN().to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    images = torch.from_numpy(scenes.images)
    model.train()
    for idx in _batches(len(scenes), cfg, gen):
        x = images[idx]
        noisy = x + sigma * torch.randn(x.shape, generator=gen)
        loss = F.mse_loss(model(noisy.to(cfg.device)), x.to(cfg.device))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
