"""The shared loop of the two local gradient-free searches of §7.4.1.2.

Both Pattern Search and Random Greedy Search propose ``theta + scale * d`` for directions ``d``
drawn from a stream, accept a proposal only when it *strictly lowers* the objective — the
training loss, as the chapter says (the normalised loss is an option) — and divide ``scale`` by
a constant factor after ``patience`` consecutive failures. They differ only in the stream
(signed coordinate vectors or Gaussian vectors) and the patience. Models are recorded in the
loss windows by their *normalised* loss, the comparison measure shared with SGD and G&C.

The loop is sequential in meaning but speculative in execution: it scores the next ``k``
proposals from the current point in one vectorised call and keeps the first improving one;
proposals after it go back to the front of the stream, exactly as the one-at-a-time algorithm
would meet them from the new point. Results therefore match the sequential algorithm on the
same random stream, and ``evaluations`` counts its evaluations, not the speculative ones.
"""

from __future__ import annotations

import abc
import math
import time

import attrs
import torch

from .levels import LevelHit, LevelTracker, LossWindow
from .losses import LossKind, accuracy, cross_entropy, normalise_logits
from .models import FlatModel


class DirectionStream(abc.ABC):
    """An endless, seeded stream of search directions with push-back."""

    def __init__(self, dim: int, generator: torch.Generator) -> None:
        self.dim = dim
        self.generator = generator
        self._buffer = torch.empty(0, dim, device=generator.device)

    @abc.abstractmethod
    def _draw(self) -> torch.Tensor:
        """A fresh chunk of directions ``(n, dim)``."""

    def take(self, count: int) -> torch.Tensor:
        while len(self._buffer) < count:
            self._buffer = torch.cat([self._buffer, self._draw()])
        out, self._buffer = self._buffer[:count], self._buffer[count:]
        return out

    def push_back(self, unused: torch.Tensor) -> None:
        self._buffer = torch.cat([unused, self._buffer])


@attrs.frozen
class SearchSchedule:
    """Initial ``scale``, its ``shrink`` factor, and how many failures in a row trigger it."""

    scale: float = attrs.field(validator=attrs.validators.gt(0))
    shrink: float = attrs.field(validator=attrs.validators.gt(1))
    patience: int = attrs.field(validator=attrs.validators.gt(0))
    min_scale: float = 1e-6
    max_evaluations: int = 200_000
    max_batch: int = 256
    objective: LossKind = LossKind.TRAINING


@attrs.frozen
class SearchResult:
    """Hits per window, the final point, and the objective after every accepted step."""

    hits: tuple[LevelHit | None, ...]
    theta: torch.Tensor = attrs.field(eq=False, repr=False)
    evaluations: int
    accepted_losses: tuple[float, ...]
    final_scale: float
    seconds: float


def _evaluate(
    fm: FlatModel, thetas: torch.Tensor, x: torch.Tensor, y: torch.Tensor, kind: LossKind
):
    """Objective, normalised loss and accuracy for a stack of models."""
    with torch.no_grad():
        logits = fm.logits(thetas, x)
        normalised = cross_entropy(normalise_logits(logits), y)
        objective = normalised if kind is LossKind.NORMALISED else cross_entropy(logits, y)
        return objective, normalised, accuracy(logits, y)


def local_search(
    fm: FlatModel,
    x: torch.Tensor,
    y: torch.Tensor,
    theta0: torch.Tensor,
    stream: DirectionStream,
    schedule: SearchSchedule,
    windows: tuple[LossWindow, ...],
) -> SearchResult:
    """Descend until every window has a model, the budget is spent, or the scale underflows.

    Windows are judged on the normalised loss (the comparison measure); the objective is
    ``schedule.objective``. Like SGD, the search also stops once the model fits the training
    set with a normalised loss below every open window.
    """
    start = time.perf_counter()
    tracker = LevelTracker(windows)
    theta = theta0.detach().clone()
    obj, norm, acc = (float(v[0]) for v in _evaluate(fm, theta[None], x, y, schedule.objective))
    tracker.offer(theta, norm, acc, 0)
    scale, fails, evals, batch = schedule.scale, 0, 0, 8
    accepted = [obj]
    while not tracker.done and evals < schedule.max_evaluations and scale >= schedule.min_scale:
        k = min(batch, schedule.patience - fails, schedule.max_evaluations - evals)
        dirs = stream.take(k)
        objs, norms, accs = _evaluate(fm, theta[None] + scale * dirs, x, y, schedule.objective)
        better = torch.nonzero(objs < obj).flatten()
        if len(better):
            j = int(better[0])
            stream.push_back(dirs[j + 1 :])
            evals += j + 1
            theta = theta + scale * dirs[j]
            obj, norm, acc, fails = float(objs[j]), float(norms[j]), float(accs[j]), 0
            accepted.append(obj)
            tracker.offer(theta, norm, acc, evals)
            batch = max(8, min(schedule.max_batch, 2 * (j + 1)))
        else:
            evals += k
            fails += k
            batch = min(schedule.max_batch, 2 * batch)
            if fails >= schedule.patience:
                scale, fails = scale / schedule.shrink, 0
        if math.isnan(obj):
            break
        if norm < tracker.lowest_open and (acc >= 1.0 or schedule.objective is LossKind.NORMALISED):
            break  # below every open window: fitted (the normalised loss rarely climbs back),
            # or the normalised objective, which only falls, can reach none of them any more
    return SearchResult(
        tracker.result(), theta, evals, tuple(accepted), scale, time.perf_counter() - start
    )
