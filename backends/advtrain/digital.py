"""JPEG compression and pixelation of ImageNet-C / CIFAR-10-C.

- JPEG: the reference saves each image with PIL at quality 80, 65, 58, 50, 40 (CIFAR) and
  decodes it. We do exactly that when Pillow is installed; otherwise `jpeg_dct` runs baseline
  JPEG's lossy steps itself — 8-bit rounding, RGB -> YCbCr, 4:2:0 chroma subsampling (PIL's
  default), 8x8 DCT, quantisation by the IJG tables scaled to the quality as libjpeg does,
  and back — without the lossless entropy coding, which changes nothing.
- Pixelate: the reference resizes down to ``int(size * c)`` and back up with PIL's BOX filter.
  `box_matrix` builds PIL's BOX resampling weights (``ImagingResample``'s coefficients), so
  both resizes are two matrix products on the batch, identical to PIL on float images.
"""

from __future__ import annotations

import importlib.util
import io
import math

import numpy as np
import torch
from scipy.fft import dctn, idctn
from torch import Tensor

JPEG_QUALITY = (80, 65, 58, 50, 40)
PIXELATE = (0.95, 0.9, 0.85, 0.75, 0.65)

# ------------------------------------------------------------------------------ pixelate


def box_matrix(in_size: int, out_size: int) -> np.ndarray:
    """PIL's BOX resampling as an (out_size, in_size) matrix (``precompute_coeffs``)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 0.5 * filterscale
    out = np.zeros((out_size, in_size))
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        for x in range(xmin, xmax):
            t = (x - center + 0.5) / filterscale
            out[xx, x] = 1.0 if -0.5 < t <= 0.5 else 0.0
        total = out[xx].sum()
        if total:
            out[xx] /= total
    return out


def resize_box(x: Tensor, height: int, width: int) -> Tensor:
    """Resize (N, C, H, W) with PIL's BOX filter (rows and columns are separable)."""
    rows = torch.from_numpy(box_matrix(x.shape[-2], height)).to(x)
    cols = torch.from_numpy(box_matrix(x.shape[-1], width)).to(x)
    return rows @ x @ cols.T


def pixelate(x: Tensor, severity: int) -> Tensor:
    c = PIXELATE[severity - 1]
    h, w = x.shape[-2:]
    small = resize_box(x, max(1, int(h * c)), max(1, int(w * c)))
    return resize_box(small, h, w).clamp(0, 1)


# ---------------------------------------------------------------------------------- JPEG
_LUMA = np.array(
    [[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
     [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
     [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
     [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=np.float64
)  # fmt: skip
_CHROMA = np.array(
    [[17, 18, 24, 47, 99, 99, 99, 99], [18, 21, 26, 66, 99, 99, 99, 99],
     [24, 26, 56, 99, 99, 99, 99, 99], [47, 66, 99, 99, 99, 99, 99, 99]]
    + [[99] * 8] * 4, dtype=np.float64
)  # fmt: skip


def quality_table(base: np.ndarray, quality: int) -> np.ndarray:
    """libjpeg's ``jpeg_quality_scaling`` applied to a base table (baseline: 1..255)."""
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((base * scale + 50) / 100), 1, 255)


def _blocks(plane: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Quantise one (H, W) plane (values 0..255) in 8x8 DCT blocks; edges padded by repeat."""
    h, w = plane.shape
    ph, pw = math.ceil(h / 8) * 8, math.ceil(w / 8) * 8
    p = np.pad(plane, ((0, ph - h), (0, pw - w)), mode="edge") - 128.0
    b = p.reshape(ph // 8, 8, pw // 8, 8).transpose(0, 2, 1, 3)
    coef = np.round(dctn(b, axes=(2, 3), norm="ortho") / table) * table
    back = idctn(coef, axes=(2, 3), norm="ortho").transpose(0, 2, 1, 3).reshape(ph, pw)
    return back[:h, :w] + 128.0


def jpeg_dct(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG's lossy steps on one (C, H, W) image of 0..255 values; returns 0..255 floats."""
    luma, chroma = quality_table(_LUMA, quality), quality_table(_CHROMA, quality)
    if img.shape[0] == 1:
        return np.clip(np.round(_blocks(img[0], luma)), 0, 255)[None]
    r, g, b = img
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    h, w = y.shape
    y = _blocks(y, luma)
    planes = []
    for c in (cb, cr):  # 4:2:0: average 2x2, code, repeat back
        hp, wp = math.ceil(h / 2) * 2, math.ceil(w / 2) * 2
        c2 = np.pad(c, ((0, hp - h), (0, wp - w)), mode="edge")
        small = c2.reshape(hp // 2, 2, wp // 2, 2).mean(axis=(1, 3))
        coded = _blocks(small, chroma)
        planes.append(np.repeat(np.repeat(coded, 2, axis=0), 2, axis=1)[:h, :w] - 128)
    cb, cr = planes
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb])
    return np.clip(np.round(rgb), 0, 255)


def have_pillow() -> bool:
    return importlib.util.find_spec("PIL") is not None


def jpeg_pil(img: np.ndarray, quality: int) -> np.ndarray:
    """Save (C, H, W) 0..255 as JPEG with Pillow at ``quality`` and decode it."""
    from PIL import Image

    arr = img.astype(np.uint8)
    pic = (
        Image.fromarray(arr[0], mode="L")
        if arr.shape[0] == 1
        else Image.fromarray(arr.transpose(1, 2, 0), mode="RGB")
    )
    buf = io.BytesIO()
    pic.save(buf, "JPEG", quality=quality)
    out = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float64)
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1)


def jpeg_compression(x: Tensor, severity: int, use_pillow: bool | None = None) -> Tensor:
    quality = JPEG_QUALITY[severity - 1]
    codec = jpeg_pil if (have_pillow() if use_pillow is None else use_pillow) else jpeg_dct
    img = np.round(x.detach().cpu().numpy().astype(np.float64).clip(0, 1) * 255)
    out = np.stack([codec(im, quality) for im in img]) / 255.0
    return torch.from_numpy(out.astype(np.float32)).to(x.device)
