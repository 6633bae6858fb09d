"""ImageNet-C-style corruptions (Hendrycks & Dietterich 2019) in pure torch, at severities 1-5.

Table 6.2 reports out-of-distribution robustness as mean corruption error (mCE). These are the
CIFAR-10-C parameter tables (the right scale for 32x32 inputs) for the corruptions that need no
image library: noise, blur, contrast, brightness, pixelation. Inputs are NCHW floats in [0, 1];
randomness comes only from the ``torch.Generator`` passed in.
"""

from __future__ import annotations

import enum
import math

import torch
import torch.nn.functional as F
from torch import Tensor


class Corruption(enum.Enum):
    GAUSSIAN_NOISE = "gaussian_noise"
    SHOT_NOISE = "shot_noise"
    IMPULSE_NOISE = "impulse_noise"
    SPECKLE_NOISE = "speckle_noise"
    GAUSSIAN_BLUR = "gaussian_blur"
    DEFOCUS_BLUR = "defocus_blur"
    CONTRAST = "contrast"
    BRIGHTNESS = "brightness"
    PIXELATE = "pixelate"


SEVERITIES = (1, 2, 3, 4, 5)

# CIFAR-10-C parameters (make_cifar_c.py), one per severity.
_PARAMS: dict[Corruption, tuple] = {
    Corruption.GAUSSIAN_NOISE: (0.04, 0.06, 0.08, 0.09, 0.10),
    Corruption.SHOT_NOISE: (500.0, 250.0, 100.0, 75.0, 50.0),
    Corruption.IMPULSE_NOISE: (0.01, 0.02, 0.03, 0.05, 0.07),
    Corruption.SPECKLE_NOISE: (0.06, 0.10, 0.12, 0.16, 0.20),
    Corruption.GAUSSIAN_BLUR: (0.4, 0.6, 0.7, 0.8, 1.0),
    Corruption.DEFOCUS_BLUR: ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
    Corruption.CONTRAST: (0.75, 0.5, 0.4, 0.3, 0.15),
    Corruption.BRIGHTNESS: (0.05, 0.1, 0.15, 0.2, 0.3),
    Corruption.PIXELATE: (0.95, 0.9, 0.85, 0.75, 0.65),
}


def _gaussian_kernel1d(sigma: float, device: torch.device) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _conv_same(x: Tensor, kernel: Tensor) -> Tensor:
    """Depthwise 2-D convolution with reflect padding (kernel: kh x kw, odd sizes)."""
    c = x.shape[1]
    kh, kw = kernel.shape
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode="reflect")
    weight = kernel.to(x).expand(c, 1, kh, kw)
    return F.conv2d(padded, weight, groups=c)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    k = _gaussian_kernel1d(sigma, x.device)
    return _conv_same(_conv_same(x, k[None, :]), k[:, None])


def _disk_kernel(radius: float, alias_sigma: float, device: torch.device) -> Tensor:
    """An anti-aliased disk (ImageNet-C's defocus kernel)."""
    half = max(1, math.ceil(radius)) + 1
    t = torch.arange(-half, half + 1, dtype=torch.float32, device=device)
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).float()
    disk = disk / disk.sum()
    t3 = torch.arange(-1, 2, dtype=torch.float32, device=device)
    g = torch.exp(-0.5 * (t3 / alias_sigma) ** 2)  # cv2.GaussianBlur with ksize (3, 3)
    g2 = torch.outer(g, g) / g.sum() ** 2
    out = F.conv2d(disk[None, None], g2[None, None], padding=g2.shape[-1] // 2)[0, 0]
    return out / out.sum()


def _brightness(x: Tensor, c: float) -> Tensor:
    """Add ``c`` to the HSV value channel: hue and saturation fixed means RGB scales with V."""
    if x.shape[1] == 1:
        return x + c
    v = x.amax(dim=1, keepdim=True)
    scaled = x * (torch.clamp(v + c, max=1.0) / v.clamp_min(1e-12))
    return torch.where(v > 0, scaled, torch.full_like(x, c))


def corrupt(x: Tensor, kind: Corruption, severity: int, generator: torch.Generator) -> Tensor:
    """Corrupt a batch ``x`` (N, C, H, W) in [0, 1] at ``severity`` in 1..5; output in [0, 1]."""
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {SEVERITIES}, got {severity}")
    c = _PARAMS[kind][severity - 1]

    def noise(draw=torch.randn) -> Tensor:  # drawn where the generator lives, then moved
        return draw(x.shape, generator=generator, device=generator.device).to(x.device)

    if kind is Corruption.GAUSSIAN_NOISE:
        out = x + c * noise()
    elif kind is Corruption.SHOT_NOISE:
        out = torch.poisson((x * c).to(generator.device), generator=generator).to(x.device) / c
    elif kind is Corruption.IMPULSE_NOISE:
        u = noise(torch.rand)
        out = torch.where(u < c / 2, torch.zeros_like(x), x)
        out = torch.where((u >= c / 2) & (u < c), torch.ones_like(x), out)
    elif kind is Corruption.SPECKLE_NOISE:
        out = x + x * c * noise()
    elif kind is Corruption.GAUSSIAN_BLUR:
        out = _gaussian_blur(x, c)
    elif kind is Corruption.DEFOCUS_BLUR:
        out = _conv_same(x, _disk_kernel(c[0], c[1], x.device))
    elif kind is Corruption.CONTRAST:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        out = (x - mean) * c + mean
    elif kind is Corruption.BRIGHTNESS:
        out = _brightness(x, c)
    elif kind is Corruption.PIXELATE:
        h, w = x.shape[-2:]
        small = F.interpolate(x, size=(max(1, int(h * c)), max(1, int(w * c))), mode="area")
        out = F.interpolate(small, size=(h, w), mode="nearest")
    else:  # pragma: no cover - the enum is exhaustive
        raise ValueError(kind)
    return out.clamp(0.0, 1.0)
