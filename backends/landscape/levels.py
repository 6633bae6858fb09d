"""Loss levels: the loss windows in which an optimizer's model is recorded.

Chapter 7 stops an optimizer once the model has 100% training accuracy *and* a training loss
below a threshold, and compares optimizers at matched loss levels (the columns of Table 7.2).
An optimizer is therefore given a tuple of windows ``[low, high)`` and reports, for each, the
first model it met with 100% training accuracy and a loss inside the window. The chapter's
single stopping rule is the window ``[0, threshold)``; ``[0, inf)`` means "stop at 100%
training accuracy". A window is needed, not only a threshold: a guessed model that fits the data
usually has a loss far below a loose threshold, which would compare different loss levels.
"""

from __future__ import annotations

import math

import attrs
import torch


@attrs.frozen
class LossWindow:
    """Training losses in ``[low, high)``."""

    low: float = attrs.field(validator=attrs.validators.ge(0))
    high: float = attrs.field()

    @high.validator
    def _check_high(self, _attr: attrs.Attribute, value: float) -> None:
        if not value > self.low:
            raise ValueError(f"loss window needs low < high, got [{self.low}, {value})")

    def __contains__(self, loss: float) -> bool:
        return self.low <= loss < self.high

    @property
    def label(self) -> str:
        return f"[{self.low:g}, {self.high:g})"


def below(threshold: float) -> LossWindow:
    """The chapter's stopping rule ``loss < threshold``."""
    return LossWindow(0.0, threshold)


def windows_from_edges(edges: tuple[float, ...]) -> tuple[LossWindow, ...]:
    """``(0.3, 0.35, 0.4)`` -> ``[0.3, 0.35), [0.35, 0.4)``."""
    if len(edges) < 2 or any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"loss-bin edges must be at least two ascending numbers, got {edges}")
    return tuple(LossWindow(a, b) for a, b in zip(edges, edges[1:], strict=False))


@attrs.frozen
class LevelHit:
    """The first model accepted in one window.

    ``cost`` counts what the optimizer spent to get there: guesses for Guess & Check (so the
    volume estimate of §7.6 is ``1 / cost``), loss evaluations for the local searches, steps
    for SGD.
    """

    window: LossWindow
    theta: torch.Tensor = attrs.field(eq=False, repr=False)
    loss: float
    accuracy: float
    cost: int

    @property
    def volume(self) -> float:
        """Reciprocal of the cost: the fraction of guesses that landed in the accepted set."""
        return 1.0 / self.cost


class LevelTracker:
    """Records the first model meeting ``accuracy == 1 and low <= loss < high`` per window."""

    def __init__(self, windows: tuple[LossWindow, ...]) -> None:
        if not windows:
            raise ValueError("need at least one loss window")
        self.windows = tuple(windows)
        self.hits: list[LevelHit | None] = [None] * len(self.windows)

    @property
    def done(self) -> bool:
        return all(h is not None for h in self.hits)

    @property
    def lowest_open(self) -> float:
        """The smallest ``low`` of a window still open (``inf`` when all are filled)."""
        return min(
            (w.low for w, h in zip(self.windows, self.hits, strict=True) if h is None),
            default=math.inf,
        )

    def accepts(self, index: int, loss: float, accuracy: float) -> bool:
        """Both stopping conditions of window ``index``."""
        return accuracy >= 1.0 and loss in self.windows[index]

    def offer(self, theta: torch.Tensor, loss: float, accuracy: float, cost: int) -> None:
        """Consider one model; fills every open window whose conditions it meets."""
        for i, w in enumerate(self.windows):
            if self.hits[i] is None and self.accepts(i, loss, accuracy):
                self.hits[i] = LevelHit(w, theta.detach().clone(), loss, accuracy, cost)

    def result(self) -> tuple[LevelHit | None, ...]:
        return tuple(self.hits)
