"""Sample-wise Pyramid Adversarial Training (PAT), objective (6.2) with a k-step sign attack.

For every batch a fresh pyramid perturbation (random start in the ball) is pushed up the
adversarial loss by ``k`` sign-gradient steps of size ``radius / k`` (the chapter's rule); each
step costs a forward and a backward. Training then takes one step on the doubled batch
``[x, x + delta]``, so one update costs ``k + 2`` example-passes against standard training's 1.
"""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import pyramid as pyr
from .schedule import RadiusSchedule
from .standard import doubled_batch_loss


@attrs.frozen
class PATConfig:
    """``steps`` sign steps of size ``step_size`` (default ``radius / steps``) per batch."""

    pyramid: pyr.PyramidConfig = pyr.PyramidConfig()
    radius: RadiusSchedule = RadiusSchedule.constant(6 / 255)
    steps: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    lam: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    clean_loss: bool = True
    step_size: float | None = None


def pyramid_attack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    cfg: pyr.PyramidConfig,
    radius: float,
    steps: int,
    step_size: float,
    generator: torch.Generator,
) -> Tensor:
    """The k-step sample-wise pyramid adversary; returns the perturbed batch (detached).

    Gradients are taken with respect to the pyramid levels only (``autograd.grad``), so the
    model's ``.grad`` fields are left untouched for the training step that follows.
    """
    _, c, h, w = x.shape
    params = pyr.uniform(cfg, (c, h, w), x.shape[0], radius, generator, x.device)
    for _ in range(steps):
        for p in params:
            p.requires_grad_(True)
        x_adv = pyr.perturb(x, pyr.compose(params, cfg, radius, h, w), cfg)
        loss = F.cross_entropy(model(x_adv), y)
        grads = torch.autograd.grad(loss, params)
        params = [p.detach() for p in params]
        pyr.sign_step_(params, grads, step_size, radius)
    with torch.no_grad():
        return pyr.perturb(x, pyr.compose(params, cfg, radius, h, w), cfg)


class PAT:
    """PAT-k as a training method (see module docstring)."""

    def __init__(self, cfg: PATConfig, generator: torch.Generator) -> None:
        self.cfg = cfg
        self.generator = generator
        self.name = f"pat{cfg.steps}"

    def step(
        self, model: nn.Module, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer, epoch: float
    ) -> float:
        cfg = self.cfg
        radius = cfg.radius(epoch)
        tau = cfg.step_size if cfg.step_size is not None else radius / cfg.steps
        x_adv = pyramid_attack(model, x, y, cfg.pyramid, radius, cfg.steps, tau, self.generator)
        optimizer.zero_grad(set_to_none=True)
        loss = doubled_batch_loss(model, x, x_adv, y, cfg.lam, cfg.clean_loss)
        loss.backward()
        optimizer.step()
        return float(loss.detach())
