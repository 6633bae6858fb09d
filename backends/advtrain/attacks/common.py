"""Shared pieces of the attacks: the norm enum, the loss gradient, batched robust accuracy."""

from __future__ import annotations

import enum
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Norm(enum.Enum):
    LINF = "linf"
    L2 = "l2"


def loss_gradient(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """d CE(model(x), y) / dx, with the model's parameter gradients left untouched."""
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def robust_accuracy(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: Callable[[nn.Module, Tensor, Tensor], Tensor],
    batch_size: int = 256,
) -> tuple[float, Tensor]:
    """Accuracy on ``attack``'s outputs and the per-example success mask (True: fooled).

    The model is evaluated in eval mode; an example counts as robust only if it is classified
    correctly after the attack (so misclassified clean examples count as fooled).
    """
    was_training = model.training
    model.eval()
    fooled = []
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            adv = attack(model, xb, yb)
            with torch.no_grad():
                fooled.append(model(adv).argmax(1) != yb)
    finally:
        model.train(was_training)
    mask = torch.cat(fooled)
    return 1.0 - float(mask.float().mean()), mask
