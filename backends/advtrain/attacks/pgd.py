"""Projected gradient descent (Madry et al. 2018) in the l-inf or l2 ball.

l-inf: random start in the ball, sign steps. l2: random start in the ball, steps along the
normalised gradient, projection by rescaling. Every iterate is clipped to the pixel range.
Default step size 2.5 * eps / steps (Madry et al.). Shapes: x (N, C, H, W), y (N,).

>>> x_adv = pgd(model, x, y, eps=0.5, steps=20, norm=Norm.L2, generator=g)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .common import Norm, loss_gradient


def _flat_norm(t: Tensor) -> Tensor:
    return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


def _project(delta: Tensor, eps: float, norm: Norm) -> Tensor:
    if norm is Norm.LINF:
        return delta.clamp(-eps, eps)
    return delta * torch.clamp(eps / _flat_norm(delta), max=1.0)


def _random_start(x: Tensor, eps: float, norm: Norm, generator: torch.Generator) -> Tensor:
    if norm is Norm.LINF:
        u = torch.rand(x.shape, generator=generator, device=generator.device).to(x.device)
        return (2 * u - 1) * eps
    g = torch.randn(x.shape, generator=generator, device=generator.device).to(x.device)
    n = x[0].numel()
    r = torch.rand((len(x),), generator=generator, device=generator.device).to(x.device)
    radius = eps * r.pow(1.0 / n).view(-1, *([1] * (x.dim() - 1)))
    return g / _flat_norm(g) * radius  # uniform in the l2 ball


def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 20,
    step_size: float | None = None,
    norm: Norm = Norm.LINF,
    generator: torch.Generator | None = None,
    low: float = 0.0,
    high: float = 1.0,
) -> Tensor:
    """An adversarial batch within ``eps`` of ``x`` in ``norm`` and inside [low, high].

    Without a generator the attack starts at ``x`` (no random start).
    """
    alpha = 2.5 * eps / steps if step_size is None else step_size
    x = x.detach()
    delta = torch.zeros_like(x) if generator is None else _random_start(x, eps, norm, generator)
    delta = (x + delta).clamp(low, high) - x
    for _ in range(steps):
        grad = loss_gradient(model, x + delta, y)
        if norm is Norm.LINF:
            step = torch.sign(grad)
        else:
            step = grad / _flat_norm(grad)
        delta = _project(delta + alpha * step, eps, norm)
        delta = (x + delta).clamp(low, high) - x
    return (x + delta).detach()
