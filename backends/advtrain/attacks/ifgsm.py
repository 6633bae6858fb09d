"""Iterative FGSM (Kurakin, Goodfellow & Bengio 2017), l-inf.

``steps`` sign steps of size ``eps / steps`` (unless given) from the clean input, each followed
by projection onto the eps-ball and the pixel range. Shapes: x (N, C, H, W), y (N,).

>>> x_adv = ifgsm(model, x, y, eps=8 / 255, steps=10)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import loss_gradient


def ifgsm(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 10,
    step_size: float | None = None,
    low: float = 0.0,
    high: float = 1.0,
) -> Tensor:
    """An adversarial batch with ||x_adv - x||_inf <= eps and x_adv in [low, high]."""
    alpha = eps / steps if step_size is None else step_size
    x = x.detach()
    adv = x.clone()
    for _ in range(steps):
        adv = adv + alpha * torch.sign(loss_gradient(model, adv, y))
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(low, high)
    return adv.detach()
