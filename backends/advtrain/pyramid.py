"""Pyramid perturbations, eq. (6.3): delta = sum_s m_s * C_B(delta_s).

At scale ``s`` every ``s x s`` tile of pixels shares one parameter, so coarse scales make large,
structured edits (a brightness shift of a quadrant) while scale 1 is ordinary per-pixel noise.
``C_B`` clips each level to the l-inf ball of the current radius; the multiplier ``m_s`` then lets
coarse levels move further than fine ones. The perturbed image is clipped to the pixel range.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import attrs
import torch
from torch import Tensor


def _positive_ints(_inst: object, attr: attrs.Attribute, value: tuple[int, ...]) -> None:
    if not value or any(int(s) != s or s < 1 for s in value):
        raise ValueError(f"{attr.name} must be a non-empty tuple of positive integers, got {value}")
    if len(set(value)) != len(value):
        raise ValueError(f"{attr.name} must not repeat a scale, got {value}")


@attrs.frozen
class PyramidConfig:
    """Scales, multipliers and the pixel range; the radius is passed per call (it is scheduled)."""

    scales: tuple[int, ...] = attrs.field(
        default=(16, 4, 1), converter=tuple, validator=_positive_ints
    )
    multipliers: tuple[float, ...] = attrs.field(default=(20.0, 10.0, 1.0), converter=tuple)
    low: float = 0.0
    high: float = 1.0

    def __attrs_post_init__(self) -> None:
        if len(self.multipliers) != len(self.scales):
            raise ValueError(
                f"{len(self.scales)} scales but {len(self.multipliers)} multipliers; give one per scale"
            )
        if any(m <= 0 for m in self.multipliers):
            raise ValueError(f"multipliers must be positive, got {self.multipliers}")
        if not self.low < self.high:
            raise ValueError(f"pixel range must have low < high, got [{self.low}, {self.high}]")

    def max_linf(self, radius: float) -> float:
        """The largest |delta| any pixel can receive before clipping to the pixel range."""
        return radius * sum(self.multipliers)


def flat_config(low: float = 0.0, high: float = 1.0) -> PyramidConfig:
    """The no-pyramid ablation (Table 6.3): a single per-pixel level with multiplier 1."""
    return PyramidConfig(scales=(1,), multipliers=(1.0,), low=low, high=high)


def level_shape(scale: int, shape: Sequence[int]) -> tuple[int, int, int]:
    """Parameter shape (C, ceil(H/s), ceil(W/s)) of one level for images of shape (C, H, W)."""
    c, h, w = shape
    return (c, math.ceil(h / scale), math.ceil(w / scale))


def tile(param: Tensor, scale: int, height: int, width: int) -> Tensor:
    """Expand (..., h, w) parameters to (..., height, width): each value covers an s x s tile."""
    out = param.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    return out[..., :height, :width]


def compose(
    params: Sequence[Tensor], cfg: PyramidConfig, radius: float, height: int, width: int
) -> Tensor:
    """delta = sum_s m_s * tile(clip(delta_s, -radius, radius)); differentiable in the params."""
    total: Tensor | None = None
    for p, s, m in zip(params, cfg.scales, cfg.multipliers, strict=True):
        level = m * tile(p.clamp(-radius, radius), s, height, width)
        total = level if total is None else total + level
    assert total is not None
    return total


def perturb(x: Tensor, delta: Tensor, cfg: PyramidConfig) -> Tensor:
    """x + delta clipped to the valid pixel range (delta may be universal: batch dim 1)."""
    return (x + delta).clamp(cfg.low, cfg.high)


def zeros(
    cfg: PyramidConfig, shape: Sequence[int], batch: int, device: torch.device | str = "cpu"
) -> list[Tensor]:
    """Zero-initialised levels (Algorithm 5 starts the universal pattern at zero)."""
    return [torch.zeros((batch, *level_shape(s, shape)), device=device) for s in cfg.scales]


def uniform(
    cfg: PyramidConfig,
    shape: Sequence[int],
    batch: int,
    radius: float,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> list[Tensor]:
    """Levels drawn uniformly from [-radius, radius] (the random start of sample-wise PAT)."""
    out = []
    for s in cfg.scales:
        u = torch.rand(
            (batch, *level_shape(s, shape)), generator=generator, device=generator.device
        )
        u = u.to(device)
        out.append((2 * u - 1) * radius)
    return out


@torch.no_grad()
def sign_step_(
    params: Sequence[Tensor], grads: Sequence[Tensor], step: float, radius: float
) -> None:
    """In place: delta_s <- clip(delta_s + step * sign(grad_s), -radius, radius) (ascent)."""
    for p, g in zip(params, grads, strict=True):
        p.add_(step * torch.sign(g)).clamp_(-radius, radius)
