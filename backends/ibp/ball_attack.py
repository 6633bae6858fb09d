"""PGD and I-FGSM inside an l-inf or l2 input ball, clipped to the input range.

The empirical side of an input-ball certificate: every image is attacked at the largest radius
on the margin loss ``max_{j != y} z_j - z_y`` (positive exactly when misclassified). Each step
moves along the gradient's sign (l-inf) or its direction (l2), then projects back onto the
ball and clips to ``[low, high]``. Clipping a point of the ball to a box that holds the centre
only moves coordinates towards the centre, so the result stays in the ball: an adversarial
input found here lies in the very set the certificate covers.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn

from .attack import margin_loss

#: l2 projections aim this fraction inside the radius, so float rounding never lands a
#: counterexample just outside the certified ball
_L2_INSIDE = 1.0 - 1e-6


@attrs.frozen
class BallAttackConfig:
    eps: float = attrs.field(validator=attrs.validators.ge(0.0))
    l2: bool = False
    steps: int = attrs.field(default=20, validator=attrs.validators.ge(0))
    step_size: float = attrs.field(default=0.125, validator=attrs.validators.gt(0.0))  # x eps
    restarts: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    random_start: bool = True  # PGD; I-FGSM starts at the clean input
    low: float = 0.0
    high: float = 1.0
    batch: int = attrs.field(default=256, validator=attrs.validators.ge(1))


@attrs.frozen
class BallAttackResult:
    success: Tensor  # (B,) bool: misclassified somewhere in the ball (clean errors included)
    adversarial: Tensor  # (B, ...): the misclassified input where success, else x


def _flat_norm(v: Tensor) -> Tensor:
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


def project(x0: Tensor, x: Tensor, cfg: BallAttackConfig) -> Tensor:
    """The point of the clipped ball nearest to `x` in the attack's norm (l-inf: exact)."""
    if cfg.l2:
        delta = x - x0
        n = _flat_norm(delta)
        radius = cfg.eps * _L2_INSIDE
        delta = delta * torch.where(n > radius, radius / n.clamp(min=1e-30), torch.ones_like(n))
        return (x0 + delta).clamp(cfg.low, cfg.high)
    lo = (x0 - cfg.eps).clamp(cfg.low, cfg.high)  # the same box `inputs.linf_ball` certifies
    hi = (x0 + cfg.eps).clamp(cfg.low, cfg.high)
    return torch.maximum(torch.minimum(x, hi), lo)


def _start(x0: Tensor, cfg: BallAttackConfig, gen: torch.Generator) -> Tensor:
    if not cfg.random_start or cfg.eps == 0:
        return x0.clone()
    if cfg.l2:  # uniform in the ball: a uniform direction, radius eps * u^(1/d)
        d = x0[0].numel()
        direction = torch.randn(x0.shape, generator=gen, device=gen.device).to(x0.device)
        direction = direction / _flat_norm(direction).clamp(min=1e-30)
        u = torch.rand((x0.shape[0],), generator=gen, device=gen.device).to(x0.device)
        r = cfg.eps * u.pow(1.0 / d).view(-1, *([1] * (x0.dim() - 1)))
        return project(x0, x0 + r * direction, cfg)
    u = torch.rand(x0.shape, generator=gen, device=gen.device).to(x0.device)
    return project(x0, x0 + cfg.eps * (2 * u - 1), cfg)


def _attack_batch(
    model: nn.Module, x0: Tensor, y: Tensor, cfg: BallAttackConfig, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    alpha = cfg.step_size * cfg.eps
    with torch.no_grad():
        broken = model(x0).argmax(1) != y
    best = x0.clone()
    for _ in range(cfg.restarts):
        if bool(broken.all()):
            break
        x = _start(x0, cfg, gen)
        for step in range(cfg.steps + 1):
            x = x.detach().requires_grad_(step < cfg.steps)
            loss = margin_loss(model(x), y)
            new = (loss.detach() > 0) & ~broken
            best[new] = x.detach()[new]
            broken |= new
            if step == cfg.steps or bool(broken.all()):
                break
            (grad,) = torch.autograd.grad(loss.sum(), x)
            if cfg.l2:
                move = grad / _flat_norm(grad).clamp(min=1e-30)
            else:
                move = grad.sign()
            x = project(x0, x.detach() + alpha * move, cfg)
    return broken, best


def ball_attack(
    model: nn.Module, x: Tensor, y: Tensor, cfg: BallAttackConfig, gen: torch.Generator
) -> BallAttackResult:
    """Attack every image of `x` (batched); random starts come from `gen`."""
    model.eval()
    success, adv = [], []
    for i in range(0, x.shape[0], cfg.batch):
        s, a = _attack_batch(model, x[i : i + cfg.batch], y[i : i + cfg.batch], cfg, gen)
        success.append(s)
        adv.append(a)
    return BallAttackResult(torch.cat(success), torch.cat(adv))
