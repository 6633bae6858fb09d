"""The SGD baseline of Tables 7.2-7.4, stopped at matched normalised loss levels.

SGD (``torch.optim.SGD`` with momentum) minimises the ordinary (training) cross-entropy from PyTorch's default initialisation. After
every step the whole (few-shot) training set is scored and the model is recorded in each loss
window it enters with 100% training accuracy — early stopping at a loss level, as the chapter
does for its SGD and linear baselines.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .config import SGDConfig
from .levels import LevelTracker, LossWindow
from .local_search import SearchResult
from .losses import accuracy, cross_entropy, normalise_logits
from .models import FlatModel


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
    opt = torch.optim.SGD(
        [theta], lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
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
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(fm.logits_one(theta, xb), yb).backward()
        opt.step()
    return SearchResult(
        tracker.result(),
        theta.detach(),
        step,
        tuple(losses),
        config.lr,
        time.perf_counter() - start,
    )
