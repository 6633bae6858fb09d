"""Local Gradient Smoothing (Naseer et al. 2019; §2.3.1, eq. (2.2)): ``x ⊙ (1 - λ g(x))``.

``g`` is the first-order image-gradient magnitude, normalised to [0, 1] per image, then
thresholded window by window: only windows whose mean normalised gradient exceeds
``threshold`` keep their values (the union of kept windows). The windowing/thresholding mask
is piecewise constant, so its gradient is zero; the smoothing product itself is
differentiable, which is what the strong attack of §2.3.2 exploits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..defense_options import LGSConfig


def image_gradient(x: Tensor, eps: float = 1e-12) -> Tensor:
    """``(B, 1, H, W)`` gradient magnitude from forward differences, summed over channels."""
    dx = F.pad(x[..., :, 1:] - x[..., :, :-1], (0, 1, 0, 0))
    dy = F.pad(x[..., 1:, :] - x[..., :-1, :], (0, 0, 0, 1))
    return torch.sqrt((dx * dx + dy * dy).sum(1, keepdim=True) + eps)


def _normalise(g: Tensor) -> Tensor:
    flat = g.flatten(1)
    lo = flat.amin(1)[:, None, None, None]
    hi = flat.amax(1)[:, None, None, None]
    return (g - lo) / (hi - lo).clamp_min(1e-12)


def window_mask(g: Tensor, window: int, stride: int, threshold: float) -> Tensor:
    """``(B, 1, H, W)`` 0/1: pixels covered by some window whose mean of ``g`` > threshold."""
    h, w = g.shape[-2:]
    k = (min(window, h), min(window, w))
    pad_h, pad_w = (-(h - k[0]) % stride), (-(w - k[1]) % stride)
    gp = F.pad(g, (0, pad_w, 0, pad_h))
    keep = (F.avg_pool2d(gp, k, stride) > threshold).float()
    ones = torch.ones(1, 1, *k, device=g.device, dtype=g.dtype)
    cover = F.conv_transpose2d(keep, ones, stride=stride)[..., :h, :w]
    return (cover > 0).to(g.dtype)


class LocalGradientSmoothing(nn.Module):
    """The LGS transform alone (no classifier); the output stays in the input's range."""

    def __init__(self, cfg: LGSConfig = LGSConfig()) -> None:
        super().__init__()
        self.cfg = cfg

    def forward(self, x: Tensor) -> Tensor:
        g = _normalise(image_gradient(x))
        with torch.no_grad():
            m = window_mask(g, self.cfg.window, self.cfg.stride, self.cfg.threshold)
        damp = (self.cfg.smoothing * g * m).clamp(0.0, 1.0)
        return x * (1.0 - damp)
