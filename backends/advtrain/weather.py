"""Snow, frost and fog of ImageNet-C / CIFAR-10-C (Hendrycks & Dietterich 2019).

Snow and fog follow the reference definitions (``make_cifar_c.py``): fog adds a diamond-square
plasma fractal and rescales by the image maximum; snow draws a Gaussian layer, zooms its
centre, thresholds it, quantises it to 8 bits, motion-blurs it along an angle in [-135, -45]
degrees, and adds it (and its 180-degree rotation) to a brightened, greyed image.

**Frost is synthetic here.** The reference blends a random crop of one of six photographs of
frost on glass (``frost1.png`` ... ``frost6.jpg``, downscaled by 0.2 for CIFAR) into the image:
``clip(c0 * x + c1 * frost)``. Those photographs are not shipped and nothing is downloaded, so
`frost_textures` synthesises five fixed textures procedurally (from a fixed seed) — a dim plasma-fractal haze with bright,
hexagonally branching ice needles, blurred slightly and tinted blue-white — with the reference's
blend weights and random choice and crop per image. Frost errors are therefore not comparable with published
ImageNet-C frost numbers; every other corruption follows the reference.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

from .blurs import clipped_zoom, motion_blur_images

SNOW = (
    (0.1, 0.2, 1, 0.6, 8, 3, 0.95),
    (0.1, 0.2, 1, 0.5, 10, 4, 0.9),
    (0.15, 0.3, 1.75, 0.55, 10, 4, 0.9),
    (0.25, 0.3, 2.25, 0.6, 12, 6, 0.85),
    (0.3, 0.3, 1.25, 0.65, 14, 12, 0.8),
)
FROST = ((1, 0.2), (1, 0.3), (0.9, 0.4), (0.85, 0.4), (0.75, 0.45))
FOG = ((0.2, 3), (0.5, 3), (0.75, 2.5), (1, 2), (1.5, 1.75))


def plasma_fractal(mapsize: int, wibbledecay: float, rng: np.random.Generator) -> np.ndarray:
    """The reference's diamond-square height map, (mapsize, mapsize) in [0, 1]."""
    assert mapsize & (mapsize - 1) == 0, "mapsize must be a power of two"
    maparray = np.zeros((mapsize, mapsize), dtype=np.float64)
    stepsize, wibble = mapsize, 100.0

    def wibbledmean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while stepsize >= 2:
        half = stepsize // 2
        corner = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        square = corner + np.roll(corner, shift=-1, axis=0)
        square += np.roll(square, shift=-1, axis=1)
        maparray[half:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(square)
        dr = maparray[half:mapsize:stepsize, half:mapsize:stepsize]
        ul = maparray[0:mapsize:stepsize, 0:mapsize:stepsize]
        lt = dr + np.roll(dr, 1, axis=0) + ul + np.roll(ul, -1, axis=1)
        maparray[0:mapsize:stepsize, half:mapsize:stepsize] = wibbledmean(lt)
        tt = dr + np.roll(dr, 1, axis=1) + ul + np.roll(ul, -1, axis=0)
        maparray[half:mapsize:stepsize, 0:mapsize:stepsize] = wibbledmean(tt)
        stepsize //= 2
        wibble /= wibbledecay
    maparray -= maparray.min()
    return maparray / maparray.max()


def _pow2(n: int) -> int:
    return 1 << max(1, math.ceil(math.log2(n)))


def fog(x: Tensor, severity: int, rng: np.random.Generator) -> Tensor:
    strength, decay = FOG[severity - 1]
    img = x.detach().cpu().numpy().astype(np.float64)
    n, _, h, w = img.shape
    size = _pow2(max(h, w))
    out = np.empty_like(img)
    for b in range(n):
        top = img[b].max()
        layer = plasma_fractal(size, decay, rng)[:h, :w]
        out[b] = np.clip((img[b] + strength * layer) * top / (top + strength), 0, 1)
    return torch.from_numpy(out.astype(np.float32)).to(x.device)


def grey(img: np.ndarray) -> np.ndarray:
    """cv2's RGB2GRAY (0.299 R + 0.587 G + 0.114 B) of (N, C, H, W); grey images as they are."""
    if img.shape[1] == 1:
        return img[:, 0]
    return 0.299 * img[:, 0] + 0.587 * img[:, 1] + 0.114 * img[:, 2]


def snow(x: Tensor, severity: int, rng: np.random.Generator) -> Tensor:
    loc, scale, zoom, threshold, radius, sigma, keep = SNOW[severity - 1]
    img = x.detach().cpu().numpy().astype(np.float32)
    n, _, h, w = img.shape
    layers = np.empty((n, h, w))
    angles = np.empty(n)
    for b in range(n):  # per image: the reference's order of draws
        layer = clipped_zoom(rng.normal(loc, scale, size=(h, w)), zoom)
        layer[layer < threshold] = 0
        layers[b] = np.floor(np.clip(layer, 0, 1) * 255)  # .astype(np.uint8) of the PNG
        angles[b] = rng.uniform(-135, -45)
    blurred = motion_blur_images(layers[:, None], radius, sigma, angles)[:, 0]
    layer = (np.clip(np.round(blurred), 0, 255) / 255.0)[:, None]  # back through an 8-bit PNG
    bright = np.maximum(img, grey(img)[:, None] * 1.5 + 0.5)
    img = keep * img + (1 - keep) * bright
    out = np.clip(img + layer + np.rot90(layer, k=2, axes=(2, 3)), 0, 1)
    return torch.from_numpy(out.astype(np.float32)).to(x.device)


#: the seed of the five synthetic frost "photographs" (fixed, like the reference's files)
FROST_SEED = 20190328


@functools.lru_cache(maxsize=4)
def frost_textures(size: int) -> tuple[np.ndarray, ...]:
    """The five fixed frost textures at ``size`` (computed once per size)."""
    rng = np.random.default_rng(FROST_SEED)
    return tuple(frost_texture(size, rng) for _ in range(5))


def frost_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic frost photograph, (3, size, size) in [0, 1] (see the module docstring):
    plasma haze plus ice needles branching at +-60 degrees, slightly blurred, blue-white."""
    haze = plasma_fractal(_pow2(size), 2.0, rng)[:size, :size]
    ice = np.zeros((size, size))
    for _ in range(max(8, size // 2)):
        y, x = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * math.pi)
        _needle(ice, y, x, angle, rng.uniform(0.2, 0.6) * size, rng.uniform(0.5, 1.0), rng, 2)
    ice = ndimage.gaussian_filter(ice, 0.6, mode="wrap")
    ice /= max(ice.max(), 1e-12)
    base = np.clip(0.15 + 0.3 * haze + 0.75 * ice, 0, 1)
    tint = np.array([0.88, 0.95, 1.0])[:, None, None]  # cold blue-white, as in the photographs
    return np.clip(base[None] * tint, 0, 1)


def _needle(canvas, y, x, angle, length, value, rng, depth) -> None:
    """Draw one needle and, recursively, side branches at +-60 degrees (hexagonal ice)."""
    size = canvas.shape[0]
    steps = max(2, int(length * 2))
    t = np.linspace(0, length, steps)
    ys, xs = (y + t * math.sin(angle)) % size, (x + t * math.cos(angle)) % size
    np.maximum.at(canvas, (ys.astype(int), xs.astype(int)), value * np.linspace(1, 0.4, steps))
    if depth == 0:
        return
    for frac in rng.uniform(0.2, 0.9, size=3):
        side = angle + rng.choice((-1.0, 1.0)) * math.pi / 3
        _needle(canvas, y + frac * length * math.sin(angle), x + frac * length * math.cos(angle),
                side, length * 0.35, value * 0.8, rng, depth - 1)  # fmt: skip


def frost(x: Tensor, severity: int, rng: np.random.Generator) -> Tensor:
    keep, weight = FROST[severity - 1]
    img = x.detach().cpu().numpy().astype(np.float32)
    n, c, h, w = img.shape
    size = 3 * max(h, w)
    textures = frost_textures(size)  # fixed, like the reference's five frost photographs
    out = np.empty_like(img)
    for b in range(n):
        tex = textures[rng.integers(5)]
        top, left = rng.integers(0, size - h), rng.integers(0, size - w)
        crop = tex[:, top : top + h, left : left + w]
        if c == 1:
            crop = grey(crop[None])
        out[b] = np.clip(keep * img[b] + weight * crop, 0, 1)
    return torch.from_numpy(out).to(x.device)
