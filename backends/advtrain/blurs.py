"""Glass, motion and zoom blur and the elastic transform of ImageNet-C / CIFAR-10-C.

Each follows the reference definitions (Hendrycks & Dietterich 2019, ``make_cifar_c.py``):

- glass blur: Gaussian blur (skimage: edge 'nearest', truncate 4), 8-bit quantisation, then
  every pixel from the bottom-right up swaps with a neighbour at an offset drawn from
  ``randint(-d, d)`` (i.e. {-d, ..., d-1}: the reference's half-open range), then blur again;
- motion blur: ImageMagick's ``-motion-blur radius x sigma + angle`` as re-implemented in numpy
  by the ``imagecorruptions`` package: a one-sided Gaussian of ``2 * radius + 1`` taps along the
  angle, edge pixels repeated; angle uniform in [-45, 45] degrees per image;
- zoom blur: the mean of the image and its centre crops zoomed (scipy ``zoom``, order 1) by
  each factor of the severity's range;
- elastic transform: a random affine warp of three points (cv2 ``warpAffine``, bilinear,
  border reflect-101) then a smooth random displacement field (``map_coordinates``, order 1,
  mode 'reflect').

Inputs are NCHW float tensors in [0, 1]; randomness comes from one numpy generator per call,
seeded from the caller's torch generator. Geometry is computed with numpy/scipy on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor

GLASS = ((0.05, 1, 1), (0.25, 1, 1), (0.4, 1, 1), (0.25, 1, 2), (0.4, 1, 2))
MOTION = ((6, 1.0), (6, 1.5), (6, 2.0), (8, 2.0), (9, 2.5))
ZOOM = tuple(
    np.arange(1, stop, 0.01) for stop in (1.06, 1.11, 1.16, 1.21, 1.26)
)  # the reference's np.arange ranges
ELASTIC = (
    (0, 0, 0.08),
    (0.05, 0.2, 0.07),
    (0.08, 0.06, 0.06),
    (0.1, 0.04, 0.05),
    (0.1, 0.03, 0.03),
)


def skimage_gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    """skimage.filters.gaussian on (..., H, W): edge mode 'nearest', truncate 4."""
    sig = (0,) * (x.ndim - 2) + (sigma, sigma)
    return ndimage.gaussian_filter(x, sig, mode="nearest", truncate=4.0)


def glass_blur(x: Tensor, severity: int, rng: np.random.Generator) -> Tensor:
    sigma, delta, iterations = GLASS[severity - 1]
    img = x.detach().cpu().numpy().astype(np.float64)
    img = np.floor(np.clip(skimage_gaussian(img, sigma), 0, 1) * 255)  # np.uint8(... * 255)
    n, _, h, w = img.shape
    rows, cols = range(h - delta, delta, -1), range(w - delta, delta, -1)
    every = np.arange(n)
    for _ in range(iterations):
        offsets = rng.integers(-delta, delta, size=(len(rows), len(cols), 2, n))
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                dx, dy = offsets[i, j]
                rr, cc = r + dy, c + dx
                here = img[every, :, r, c].copy()
                img[every, :, r, c] = img[every, :, rr, cc]
                img[every, :, rr, cc] = here
    out = np.clip(skimage_gaussian(img / 255.0, sigma), 0, 1)
    return torch.from_numpy(out.astype(np.float32)).to(x.device)


def motion_kernel(radius: int, sigma: float) -> np.ndarray:
    """ImageMagick's one-sided motion kernel: ``2 * radius + 1`` Gaussian taps, normalised."""
    k = np.arange(2 * radius + 1, dtype=np.float64)
    kernel = np.exp(-(k**2) / (2 * sigma**2)) / (math.sqrt(2 * math.pi) * sigma)
    return kernel / kernel.sum()


def motion_blur_images(
    img: np.ndarray, radius: int, sigma: float, angles: np.ndarray
) -> np.ndarray:
    """Motion-blur each image of (N, C, H, W) along its own angle (degrees), edges repeated."""
    n, _, h, w = img.shape
    kernel = motion_kernel(radius, sigma)
    width = len(kernel)
    out = np.zeros_like(img, dtype=np.float64)
    rows, cols = np.arange(h), np.arange(w)
    for b in range(n):
        a = math.radians(float(angles[b]))
        px, py = width * math.sin(a), width * math.cos(a)
        hyp = math.hypot(px, py)
        for i in range(width):
            dy = -math.ceil(i * px / hyp - 0.5)
            dx = -math.ceil(i * py / hyp - 0.5)
            if abs(dy) >= h or abs(dx) >= w:
                break  # the simulated motion left the image
            shifted = img[b][:, np.clip(rows - dy, 0, h - 1)][:, :, np.clip(cols - dx, 0, w - 1)]
            out[b] += kernel[i] * shifted
    return out


def motion_blur(x: Tensor, severity: int, rng: np.random.Generator) -> Tensor:
    radius, sigma = MOTION[severity - 1]
    angles = rng.uniform(-45, 45, size=len(x))
    out = motion_blur_images(x.detach().cpu().numpy().astype(np.float64), radius, sigma, angles)
    return torch.from_numpy(np.clip(out, 0, 1).astype(np.float32)).to(x.device)


def clipped_zoom(img: np.ndarray, factor: float) -> np.ndarray:
    """Zoom the centre of (..., H, W) by ``factor`` and crop to H x W: scipy's ``zoom``
    (order 1, output size ``round(size * factor)``, corners aligned) as one bilinear
    interpolation with ``align_corners=True``, which maps output to input coordinates alike."""
    h, w = img.shape[-2:]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = torch.from_numpy(np.ascontiguousarray(img[..., top : top + ch, left : left + cw]))
    lead = crop.shape[:-2]
    size = (round(ch * factor), round(cw * factor))
    flat = crop.reshape(-1, 1, ch, cw)
    zoomed = F.interpolate(flat, size=size, mode="bilinear", align_corners=True)
    zoomed = zoomed.reshape(*lead, *size).numpy()
    th, tw = (size[0] - h) // 2, (size[1] - w) // 2
    return zoomed[..., th : th + h, tw : tw + w].astype(img.dtype)


def zoom_blur(x: Tensor, severity: int, rng: np.random.Generator) -> Tensor:
    del rng  # deterministic
    img = x.detach().cpu().numpy().astype(np.float32)
    factors = ZOOM[severity - 1]
    out = np.zeros_like(img)
    for f in factors:
        out += clipped_zoom(img, float(f))
    img = (img + out) / (len(factors) + 1)
    return torch.from_numpy(np.clip(img, 0, 1).astype(np.float32)).to(x.device)


def affine_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """cv2.getAffineTransform: the 2x3 matrix mapping three (x, y) points onto three others."""
    a = np.hstack([src, np.ones((3, 1))])
    return np.linalg.solve(a, dst).T


def elastic_one(img: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """One (C, H, W) image, the reference's order of random draws."""
    _, h, w = img.shape
    size = w  # IMSIZE = PIL's image.size[0], the width
    alpha, sigma, jitter = (size * v for v in ELASTIC[severity - 1])
    center = np.float32((h, w)) // 2  # the reference's (rows, cols), used as (x, y) points
    square = min(h, w) // 3
    pts1 = np.float32([center + square, [center[0] + square, center[1] - square], center - square])
    pts2 = pts1 + rng.uniform(-jitter, jitter, size=pts1.shape).astype(np.float32)
    m = affine_from_points(pts1.astype(np.float64), pts2.astype(np.float64))
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]  # warpAffine samples src at M^-1 (dst)
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    sx = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2]
    sy = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2]
    warped = np.stack(
        [ndimage.map_coordinates(ch, (sy, sx), order=1, mode="mirror") for ch in img]
    )  # mirror = cv2's BORDER_REFLECT_101
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3)
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, size=(h, w)), sigma, mode="reflect", truncate=3)
    dx, dy = (dx * alpha).astype(np.float32), (dy * alpha).astype(np.float32)
    out = np.stack(
        [ndimage.map_coordinates(ch, (yy + dy, xx + dx), order=1, mode="reflect") for ch in warped]
    )
    return np.clip(out, 0, 1)


def elastic_transform(x: Tensor, severity: int, rng: np.random.Generator) -> Tensor:
    img = x.detach().cpu().numpy().astype(np.float32)
    out = np.stack([elastic_one(im, severity, rng) for im in img])
    return torch.from_numpy(out.astype(np.float32)).to(x.device)
