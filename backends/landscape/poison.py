"""The poisoned model (§7.3.1, Table 7.1): fit the training set while failing the validation set.

The worst case a training-loss minimiser could return: minimise the cross-entropy on the
training data *and* on the validation data with wrong labels (label ``(y + 1) mod K``; for two
classes the flipped label). If the architecture reaches 100% training accuracy with 0%
validation accuracy, bad global minima exist in its hypothesis class, so good generalisation of
an optimizer is not explained by the class being too small.
"""

from __future__ import annotations

import time

import attrs
import torch
import torch.nn.functional as F

from .config import PoisonConfig
from .losses import accuracy
from .models import FlatModel


@attrs.frozen
class PoisonResult:
    theta: torch.Tensor = attrs.field(eq=False, repr=False)
    train_accuracy: float
    val_accuracy: float
    steps: int
    seconds: float


def wrong_labels(y: torch.Tensor, classes: int) -> torch.Tensor:
    """A label that is never the true one: ``(y + 1) mod classes``."""
    return (y + 1) % classes


def poison(
    fm: FlatModel,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    theta0: torch.Tensor,
    config: PoisonConfig,
) -> PoisonResult:
    """Train ``theta0`` on the poisoned objective; accuracies are on the true labels."""
    start = time.perf_counter()
    classes = int(fm.logits_one(theta0, x_train[:1]).shape[-1])
    target = wrong_labels(y_val, classes)
    theta = theta0.detach().clone().requires_grad_(True)
    adam = torch.optim.Adam([theta], lr=config.lr)
    x = torch.cat([x_train, x_val])
    n = len(y_train)
    step = 0
    for step in range(1, config.steps + 1):
        logits = fm.logits_one(theta, x)
        loss = F.cross_entropy(logits[:n], y_train)
        loss = loss + config.val_weight * F.cross_entropy(logits[n:], target)
        adam.zero_grad(set_to_none=True)
        loss.backward()
        adam.step()
        if step % 10 == 0 and _fits(fm, theta, x, n, y_train, y_val) == (1.0, 0.0):
            break
    tr, va = _fits(fm, theta, x, n, y_train, y_val)
    return PoisonResult(theta.detach(), tr, va, step, time.perf_counter() - start)


def _fits(fm: FlatModel, theta, x, n, y_train, y_val) -> tuple[float, float]:
    """Train and validation accuracy (true labels)."""
    with torch.no_grad():
        logits = fm.logits_one(theta, x)[None]
    return float(accuracy(logits[:, :n], y_train)[0]), float(accuracy(logits[:, n:], y_val)[0])
