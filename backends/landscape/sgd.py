"""The SGD baseline of Tables 7.2-7.4, stopped at matched normalised loss levels.

SGD minimises the ordinary (raw) cross-entropy from PyTorch's default initialisation. After
every step the whole (few-shot) training set is scored and the model is recorded in each loss
window it enters with 100% training accuracy — early stopping at a loss level, as the chapter
does for its SGD and linear baselines.
"""

from __future__ import annotations

import time

import attrs
import torch
import torch.nn.functional as F

from .levels import LevelTracker, LossWindow
from .local_search import SearchResult
from .losses import accuracy, cross_entropy, normalise_logits
from .models import FlatModel


@attrs.frozen
class SGDConfig:
    """Full-batch when ``batch_size`` is 0 (the few-shot sets have at most a few dozen points).

    Training stops when every window has a model, after ``max_steps``, or after ``patience``
    steps without a new lowest normalised loss, or once the model fits the data below every
    open window (SGD's normalised loss rarely climbs back)."""

    lr: float = attrs.field(default=0.01, validator=attrs.validators.gt(0))
    momentum: float = attrs.field(
        default=0.9, validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.lt(1))
    )
    batch_size: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    max_steps: int = attrs.field(default=2000, validator=attrs.validators.gt(0))
    patience: int = attrs.field(default=200, validator=attrs.validators.gt(0))
    weight_decay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))


def sgd(
    fm: FlatModel,
    x: torch.Tensor,
    y: torch.Tensor,
    theta0: torch.Tensor,
    windows: tuple[LossWindow, ...],
    config: SGDConfig,
    generator: torch.Generator,
) -> SearchResult:
    """Train from ``theta0``; ``cost`` of a hit is the number of SGD steps taken."""
    start = time.perf_counter()
    tracker = LevelTracker(windows)
    theta = theta0.detach().clone().requires_grad_(True)
    velocity = torch.zeros_like(theta)
    n = len(y)
    losses: list[float] = []
    best, best_step = float("inf"), 0
    for step in range(config.max_steps + 1):
        with torch.no_grad():
            logits = fm.logits_one(theta, x)[None]
            norm = float(cross_entropy(normalise_logits(logits), y)[0])
            acc = float(accuracy(logits, y)[0])
            tracker.offer(theta, norm, acc, step)
            losses.append(float(cross_entropy(logits, y)[0]))
        if norm < best - 1e-4:
            best, best_step = norm, step
        fitted_below = acc >= 1.0 and norm < tracker.lowest_open
        if (
            tracker.done
            or fitted_below
            or step == config.max_steps
            or step - best_step >= config.patience
        ):
            break
        if config.batch_size and config.batch_size < n:
            idx = torch.randperm(n, generator=generator, device=generator.device)[
                : config.batch_size
            ]
            xb, yb = x[idx], y[idx]
        else:
            xb, yb = x, y
        (grad,) = torch.autograd.grad(F.cross_entropy(fm.logits_one(theta, xb), yb), theta)
        with torch.no_grad():  # torch.optim.SGD's update, without importing torch.optim
            grad = grad + config.weight_decay * theta
            velocity.mul_(config.momentum).add_(grad)
            theta.sub_(config.lr * velocity)
    return SearchResult(
        tracker.result(),
        theta.detach(),
        step,
        tuple(losses),
        config.lr,
        time.perf_counter() - start,
    )
