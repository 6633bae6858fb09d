"""Pattern Search (§7.4.1.2): random coordinate steps of fixed size, halved when stuck.

Pick a parameter at random, step it by ``+step`` or ``-step`` (sign at random); keep the step
only if the training loss goes down. After a full pass over all parameters without a decrease,
divide the step by ``shrink``. The chapter starts at ``step = 1`` and halves. No gradient is
used; a step that raises (or keeps) the loss is never accepted.

>>> res = pattern_search(fm, x, y, theta0, (below(math.inf),), PatternSearchConfig(), gen)
>>> res.accepted_losses  # strictly decreasing
"""

from __future__ import annotations

import torch

from .config import PatternSearchConfig
from .levels import LossWindow
from .local_search import DirectionStream, SearchResult, SearchSchedule, local_search
from .models import FlatModel


class CoordinateSteps(DirectionStream):
    """Passes over a random permutation of the coordinates, each with a random sign; the
    signed unit vectors are materialised 256 at a time (a pass over a LeNet's thousands of
    parameters would otherwise be a P x P matrix)."""

    chunk = 256

    def __init__(self, dim: int, generator: torch.Generator) -> None:
        super().__init__(dim, generator)
        self._order = torch.empty(0, dtype=torch.long, device=generator.device)
        self._signs = torch.empty(0, device=generator.device)

    def _draw(self) -> torch.Tensor:
        g = self.generator
        if not len(self._order):  # a new pass: permutation and signs drawn as one block
            self._order = torch.randperm(self.dim, generator=g, device=g.device)
            self._signs = (
                torch.randint(0, 2, (self.dim,), generator=g, device=g.device).float() * 2 - 1
            )
        order, self._order = self._order[: self.chunk], self._order[self.chunk :]
        signs, self._signs = self._signs[: self.chunk], self._signs[self.chunk :]
        steps = torch.zeros(len(order), self.dim, device=g.device)
        steps[torch.arange(len(order), device=g.device), order] = signs
        return steps


def pattern_search(
    fm: FlatModel,
    x: torch.Tensor,
    y: torch.Tensor,
    theta0: torch.Tensor,
    windows: tuple[LossWindow, ...],
    config: PatternSearchConfig,
    generator: torch.Generator,
) -> SearchResult:
    """Run Pattern Search from ``theta0``; see :func:`local_search` for the stopping rules."""
    schedule = SearchSchedule(
        scale=config.step,
        shrink=config.shrink,
        patience=fm.num_params,
        min_scale=config.min_step,
        max_evaluations=config.max_evaluations,
        objective=config.objective,
    )
    return local_search(
        fm, x, y, theta0, CoordinateSteps(fm.num_params, generator), schedule, windows
    )
