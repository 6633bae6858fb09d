"""Universal Pyramid Adversarial Training (UPAT), Algorithm 5 / objective (6.4).

One pyramid pattern ``delta_s`` per scale is shared by the whole dataset. Each step forwards the
doubled batch ``[x, x + delta]`` once and backpropagates once; that single backward yields the
gradient for the model AND for ``delta_s`` ("free" gradients), so the pattern takes its sign
ascent step ``delta_s <- C_B(delta_s + tau * sign(grad))`` at no extra cost: two example-passes
per update instead of PAT-k's ``k + 2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import torch
from torch import Tensor, nn

from . import pyramid as pyr
from .schedule import RadiusSchedule
from .standard import doubled_batch_loss


@attrs.frozen
class UPATConfig:
    """``step_size`` is tau of Algorithm 5; ``clean_loss=False`` is the Table 6.5 ablation."""

    pyramid: pyr.PyramidConfig = pyr.PyramidConfig()
    radius: RadiusSchedule = RadiusSchedule.constant(8 / 255)
    step_size: float = attrs.field(default=0.1 / 255, validator=attrs.validators.gt(0))
    lam: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    clean_loss: bool = True


class UPAT:
    """UPAT as a training method; ``pattern`` holds the universal levels (batch dim 1)."""

    name = "upat"

    def __init__(
        self, cfg: UPATConfig, input_shape: Sequence[int], device: torch.device | str = "cpu"
    ) -> None:
        self.cfg = cfg
        self.input_shape = tuple(input_shape)
        self.pattern: list[Tensor] = pyr.zeros(cfg.pyramid, self.input_shape, 1, device)

    def delta(self, epoch: float) -> Tensor:
        """The current universal perturbation (1, C, H, W) at the scheduled radius."""
        _, h, w = self.input_shape
        return pyr.compose(self.pattern, self.cfg.pyramid, self.cfg.radius(epoch), h, w).detach()

    def step(
        self, model: nn.Module, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer, epoch: float
    ) -> float:
        cfg = self.cfg
        radius = cfg.radius(epoch)
        _, _, h, w = x.shape
        for p in self.pattern:
            p.grad = None
            p.requires_grad_(True)
        x_adv = pyr.perturb(x, pyr.compose(self.pattern, cfg.pyramid, radius, h, w), cfg.pyramid)
        optimizer.zero_grad(set_to_none=True)
        loss = doubled_batch_loss(model, x, x_adv, y, cfg.lam, cfg.clean_loss)
        loss.backward()  # the one backward: model grads and free pattern grads together
        optimizer.step()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.pattern]
        self.pattern = [p.detach() for p in self.pattern]
        pyr.sign_step_(self.pattern, grads, cfg.step_size, radius)
        return float(loss.detach())
