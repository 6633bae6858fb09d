"""The ImageNet-C corruptions (Hendrycks & Dietterich 2019) at severities 1-5.

Table 6.2 reports out-of-distribution robustness as mean corruption error (mCE) over the 15
ImageNet-C corruptions: noise (Gaussian, shot, impulse), blur (defocus, glass, motion, zoom),
weather (snow, frost, fog, brightness) and digital (contrast, elastic, pixelate, JPEG); speckle
noise and Gaussian blur are the benchmark's extra corruptions. Parameters are the CIFAR-10-C
tables (the right scale for 32x32 inputs) and each corruption follows the reference
definition (``make_cifar_c.py``): noise, blur kernels, contrast and brightness in torch here;
glass/motion/zoom blur and the elastic transform in `blurs`; snow, frost and fog in `weather`
(frost with a synthesised texture: the reference's frost photographs are not shipped); JPEG and
pixelate in `digital`. Inputs are NCHW floats in [0, 1]; randomness comes only from the
``torch.Generator`` passed in (the numpy/scipy corruptions seed a numpy generator from it).
"""

from __future__ import annotations

import enum
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from . import blurs, digital, weather


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
    GLASS_BLUR = "glass_blur"
    MOTION_BLUR = "motion_blur"
    ZOOM_BLUR = "zoom_blur"
    SNOW = "snow"
    FROST = "frost"
    FOG = "fog"
    ELASTIC_TRANSFORM = "elastic_transform"
    JPEG_COMPRESSION = "jpeg_compression"


SEVERITIES = (1, 2, 3, 4, 5)

#: the 15 corruptions ImageNet-C's mCE averages (the chapter's "C" column), in its order
BENCHMARK = (
    Corruption.GAUSSIAN_NOISE, Corruption.SHOT_NOISE, Corruption.IMPULSE_NOISE,
    Corruption.DEFOCUS_BLUR, Corruption.GLASS_BLUR, Corruption.MOTION_BLUR, Corruption.ZOOM_BLUR,
    Corruption.SNOW, Corruption.FROST, Corruption.FOG, Corruption.BRIGHTNESS,
    Corruption.CONTRAST, Corruption.ELASTIC_TRANSFORM, Corruption.PIXELATE,
    Corruption.JPEG_COMPRESSION,
)  # fmt: skip

#: computed with numpy/scipy (or Pillow) on the host from a numpy generator
_HOST = {
    Corruption.GLASS_BLUR: blurs.glass_blur,
    Corruption.MOTION_BLUR: blurs.motion_blur,
    Corruption.ZOOM_BLUR: blurs.zoom_blur,
    Corruption.ELASTIC_TRANSFORM: blurs.elastic_transform,
    Corruption.SNOW: weather.snow,
    Corruption.FROST: weather.frost,
    Corruption.FOG: weather.fog,
}

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
    Corruption.PIXELATE: digital.PIXELATE,
}


def _gaussian_kernel1d(sigma: float, device: torch.device) -> Tensor:
    """scipy/skimage's kernel: radius ``int(4 sigma + 0.5)`` (truncate 4)."""
    radius = max(1, int(4 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def _conv_same(x: Tensor, kernel: Tensor, mode: str = "reflect") -> Tensor:
    """Depthwise 2-D convolution with padding (``reflect`` = cv2's BORDER_REFLECT_101,
    ``replicate`` = skimage's 'nearest'); kernel kh x kw, odd sizes."""
    c = x.shape[1]
    kh, kw = kernel.shape
    padded = F.pad(x, (kw // 2, kw // 2, kh // 2, kh // 2), mode=mode)
    weight = kernel.to(x).expand(c, 1, kh, kw)
    return F.conv2d(padded, weight, groups=c)


def _gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """skimage.filters.gaussian: separable, edges repeated ('nearest'), truncate 4."""
    k = _gaussian_kernel1d(sigma, x.device)
    return _conv_same(_conv_same(x, k[None, :], "replicate"), k[:, None], "replicate")


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
    if kind in _HOST:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        return _HOST[kind](x, severity, np.random.default_rng(seed))
    if kind is Corruption.JPEG_COMPRESSION:
        return digital.jpeg_compression(x, severity)
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
        mean = x.mean(dim=(2, 3), keepdim=True)  # per channel, as the reference
        out = (x - mean) * c + mean
    elif kind is Corruption.BRIGHTNESS:
        out = _brightness(x, c)
    elif kind is Corruption.PIXELATE:
        out = digital.pixelate(x, severity)  # PIL's BOX filter down and up
    else:  # pragma: no cover - the enum is exhaustive
        raise ValueError(kind)
    return out.clamp(0.0, 1.0)
