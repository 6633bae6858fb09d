"""Random Greedy Search (§7.4.1.2): Gaussian perturbations, kept only when they help.

Add ``N(0, sigma^2 I)`` noise to the current parameter vector; keep the noised vector only if
the training loss goes down. After ``patience`` failed perturbations in a row, divide ``sigma``
by ``shrink``. The chapter starts at ``sigma = 1``, halves, and waits 30,000 steps; the wait is a
knob here because a few-minute run cannot afford it. A loss-raising step is never accepted.
"""

from __future__ import annotations

import torch

from .config import GreedyConfig
from .levels import LossWindow
from .local_search import DirectionStream, SearchResult, SearchSchedule, local_search
from .models import FlatModel


class GaussianSteps(DirectionStream):
    """Standard normal directions, drawn 256 at a time."""

    def _draw(self) -> torch.Tensor:
        g = self.generator
        return torch.randn(256, self.dim, generator=g, device=g.device)


def random_greedy(
    fm: FlatModel,
    x: torch.Tensor,
    y: torch.Tensor,
    theta0: torch.Tensor,
    windows: tuple[LossWindow, ...],
    config: GreedyConfig,
    generator: torch.Generator,
) -> SearchResult:
    """Run Random Greedy Search from ``theta0``; see :func:`local_search` for the stopping rules."""
    schedule = SearchSchedule(
        scale=config.sigma,
        shrink=config.shrink,
        patience=config.patience,
        min_scale=config.min_sigma,
        max_evaluations=config.max_evaluations,
        objective=config.objective,
    )
    return local_search(
        fm, x, y, theta0, GaussianSteps(fm.num_params, generator), schedule, windows
    )
