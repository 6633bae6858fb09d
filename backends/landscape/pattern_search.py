"""Pattern Search (§7.4.1.2): random coordinate steps of fixed size, halved when stuck.

Pick a parameter at random, step it by ``+step`` or ``-step`` (sign at random); keep the step
only if the training loss goes down. After a full pass over all parameters without a decrease,
divide the step by ``shrink``. The chapter starts at ``step = 1`` and halves. No gradient is
used; a step that raises (or keeps) the loss is never accepted.

>>> res = pattern_search(fm, x, y, theta0, (below(math.inf),), PatternSearchConfig(), gen)
>>> res.accepted_losses  # strictly decreasing
"""

from __future__ import annotations

import attrs
import torch

from .levels import LossWindow
from .local_search import DirectionStream, SearchResult, SearchSchedule, local_search
from .losses import LossKind
from .models import FlatModel


@attrs.frozen
class PatternSearchConfig:
    """Chapter defaults: step 1, halved after a pass over all parameters without progress."""

    step: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    shrink: float = attrs.field(default=2.0, validator=attrs.validators.gt(1))
    min_step: float = 1e-4
    max_evaluations: int = 200_000
    objective: LossKind = LossKind.NORMALISED


class CoordinateSteps(DirectionStream):
    """Passes over a random permutation of the coordinates, each with a random sign."""

    def _draw(self) -> torch.Tensor:
        g = self.generator
        order = torch.randperm(self.dim, generator=g, device=g.device)
        signs = torch.randint(0, 2, (self.dim,), generator=g, device=g.device).float() * 2 - 1
        steps = torch.zeros(self.dim, self.dim, device=g.device)
        steps[torch.arange(self.dim, device=g.device), order] = signs
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
