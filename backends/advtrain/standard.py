"""Standard training step and the protocol every training method follows."""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class Method(Protocol):
    """One training method: a parameter update per batch. ``epoch`` may be fractional."""

    name: str

    def step(
        self, model: nn.Module, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer, epoch: float
    ) -> float: ...


def doubled_batch_loss(
    model: nn.Module, x: Tensor, x_adv: Tensor, y: Tensor, lam: float, clean_loss: bool
) -> Tensor:
    """Objective (6.2)/(6.4): L(f(x), y) + lam * L(f(x + delta), y) in ONE forward pass.

    The clean and perturbed halves travel as one doubled batch. Without the clean loss (the
    Table 6.5 ablation) only the perturbed batch is forwarded.
    """
    if not clean_loss:
        return lam * F.cross_entropy(model(x_adv), y)
    logits = model(torch.cat([x, x_adv]))
    n = x.shape[0]
    return F.cross_entropy(logits[:n], y) + lam * F.cross_entropy(logits[n:], y)


class Standard:
    """Empirical risk minimisation: one forward and one backward per example."""

    name = "standard"

    def step(
        self, model: nn.Module, x: Tensor, y: Tensor, optimizer: torch.optim.Optimizer, epoch: float
    ) -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        return float(loss.detach())
