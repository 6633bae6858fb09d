"""Test accuracy at matched normalised training-loss levels (Tables 7.2-7.3 in miniature).

Every trial of every optimizer contributes, per loss window, the test accuracy of the first
model it found there with 100% training accuracy (or nothing). A cell is the mean over trials
with its standard error; "best" is the highest cell mean among cells filled by at least half
the trials, as in the tables' "Best Test Acc" column.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping

import attrs


@attrs.frozen
class TrialOutcome:
    """One optimizer's run on one few-shot split: per window, ``(loss, test_acc, cost)`` or None."""

    optimizer: str
    samples: int
    trial: int
    cells: tuple[tuple[float, float, int] | None, ...]

    def to_json(self) -> dict:
        return {
            "optimizer": self.optimizer,
            "samples": self.samples,
            "trial": self.trial,
            "cells": [None if c is None else list(c) for c in self.cells],
        }

    @classmethod
    def from_json(cls, d: Mapping) -> TrialOutcome:
        cells = tuple(
            None if c is None else (float(c[0]), float(c[1]), int(c[2])) for c in d["cells"]
        )
        return cls(d["optimizer"], int(d["samples"]), int(d["trial"]), cells)


@attrs.frozen
class Cell:
    """Mean and standard error of test accuracy over the trials that filled this window."""

    mean: float | None
    se: float | None
    count: int

    def text(self) -> str:
        if self.mean is None:
            return "-"
        se = "n/a" if self.se is None else f"{100 * self.se:.2f}%"
        return f"{100 * self.mean:.2f}%±{se}"

    def to_json(self) -> dict:
        return {"mean": self.mean, "se": self.se, "count": self.count}


def mean_se(values: list[float]) -> Cell:
    """Sample mean and its standard error (``None`` for fewer than two values)."""
    n = len(values)
    if n == 0:
        return Cell(None, None, 0)
    mean = sum(values) / n
    if n < 2:
        return Cell(mean, None, 1)
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return Cell(mean, math.sqrt(var / n), n)


def aggregate(
    outcomes: Iterable[TrialOutcome], windows: int
) -> dict[tuple[str, int], tuple[Cell, ...]]:
    """``(optimizer, samples) -> one Cell per window`` over the trials."""
    acc: dict[tuple[str, int], list[list[float]]] = defaultdict(
        lambda: [[] for _ in range(windows)]
    )
    for o in outcomes:
        for i, cell in enumerate(o.cells):
            if cell is not None:
                acc[(o.optimizer, o.samples)][i].append(cell[1])
    return {k: tuple(mean_se(v) for v in lists) for k, lists in acc.items()}


def best_cell(cells: tuple[Cell, ...], trials: int) -> Cell:
    """The best mean among windows filled by at least half the trials (else any filled one)."""
    filled = [c for c in cells if c.mean is not None]
    sturdy = [c for c in filled if c.count >= math.ceil(trials / 2)] or filled
    return max(sturdy, key=lambda c: c.mean, default=Cell(None, None, 0))


def mean_log10_volume(
    outcomes: Iterable[TrialOutcome], optimizer: str, windows: int
) -> dict[int, list[float | None]]:
    """Per sample count and window, the mean of ``log10(1 / guesses)`` over trials (§7.6)."""
    logs: dict[int, list[list[float]]] = defaultdict(lambda: [[] for _ in range(windows)])
    for o in outcomes:
        if o.optimizer != optimizer:
            continue
        for i, cell in enumerate(o.cells):
            if cell is not None:
                logs[o.samples][i].append(-math.log10(cell[2]))
    return {n: [sum(v) / len(v) if v else None for v in lists] for n, lists in sorted(logs.items())}
