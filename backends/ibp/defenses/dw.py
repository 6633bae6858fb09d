"""Digital Watermarking defence (Hayes 2018; §2.3.1): mask the densest saliency region.

Saliency is ``|d max_j z_j / dx|`` of the wrapped classifier, summed over channels. Entries
above the per-image ``quantile`` are "large"; the ``regions`` windows with the highest density
of large entries are blanked (filled with 0 or the image mean) before classification. The
defence *always* removes a region, which is why its clean accuracy drops (§2.5.1). The
selection is discrete, so a gradient attack needs BPDA (identity backward) to see through it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..defense_options import DWConfig, Fill


def saliency(model: nn.Module, x: Tensor) -> Tensor:
    """``(B, 1, H, W)`` absolute input gradient of each image's top logit (no graph kept)."""
    with torch.enable_grad():
        xg = x.detach().requires_grad_(True)
        top = model(xg).amax(1).sum()
        (grad,) = torch.autograd.grad(top, xg)
    return grad.abs().sum(1, keepdim=True)


def densest_mask(s: Tensor, cfg: DWConfig) -> Tensor:
    """``(B, 1, H, W)`` 1 inside the ``regions`` windows densest in large saliency entries."""
    b, _, h, w = s.shape
    k = (min(cfg.window, h), min(cfg.window, w))
    cut = torch.quantile(s.flatten(1), cfg.quantile, dim=1)[:, None, None, None]
    large = (s > cut).to(s.dtype)
    density = F.avg_pool2d(large, k, 1) + 1e-6 * F.avg_pool2d(s, k, 1)  # ties: more saliency
    top = density.flatten(1).topk(min(cfg.regions, density[0].numel()), dim=1).indices
    keep = torch.zeros_like(density.flatten(1)).scatter(1, top, 1.0).view_as(density)
    ones = torch.ones(1, 1, *k, device=s.device, dtype=s.dtype)
    return (F.conv_transpose2d(keep, ones)[..., :h, :w] > 0).to(s.dtype)


class DigitalWatermark(nn.Module):
    """The DW transform for a given classifier: ``x`` with its densest salient region blanked."""

    def __init__(self, model: nn.Module, cfg: DWConfig = DWConfig()) -> None:
        super().__init__()
        self.model = model
        self.cfg = cfg

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            m = densest_mask(saliency(self.model, x), self.cfg)
        if self.cfg.fill is Fill.MEAN:
            fill = x.mean(dim=(1, 2, 3), keepdim=True)
        else:
            fill = torch.zeros_like(x)
        return x * (1 - m) + fill * m
