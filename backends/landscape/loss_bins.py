"""Test accuracy at matched normalised training-loss levels (Tables 7.2-7.3 in miniature).

Every trial of every optimizer contributes, per loss window, the test accuracy of the first
model it found there with 100% training accuracy (or nothing). A cell is the mean over trials
with its standard error; "best" is the highest cell mean among cells filled by at least half
the trials, as in the tables' "Best Test Acc" column.

Comparing one optimizer's best with SGD's is fair only over the same loss levels (a lower bin
generalises better), so `matched_best` takes both bests over the bins both filled, and
`paired_gaps` gives, per bin, the mean difference over the trials (same split, same
initialisation) in which both optimizers have a model there.
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
    width: float | None = None  # the model's width multiplier (Table 7.6); None: as specified

    def to_json(self) -> dict:
        return {
            "optimizer": self.optimizer,
            "samples": self.samples,
            "trial": self.trial,
            "width": self.width,
            "cells": [None if c is None else list(c) for c in self.cells],
        }

    @classmethod
    def from_json(cls, d: Mapping) -> TrialOutcome:
        cells = tuple(
            None if c is None else (float(c[0]), float(c[1]), int(c[2])) for c in d["cells"]
        )
        width = d.get("width")
        return cls(
            d["optimizer"],
            int(d["samples"]),
            int(d["trial"]),
            cells,
            None if width is None else float(width),
        )


@attrs.frozen
class PoisonOutcome:
    samples: int
    trial: int
    train_accuracy: float
    val_accuracy: float
    steps: int
    width: float | None = None

    def to_json(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, d) -> PoisonOutcome:
        width = d.get("width")
        return cls(
            int(d["samples"]),
            int(d["trial"]),
            float(d["train_accuracy"]),
            float(d["val_accuracy"]),
            int(d["steps"]),
            None if width is None else float(width),
        )


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
    """``(optimizer, samples) -> one Cell per window`` over the trials (of one width)."""
    acc: dict[tuple[str, int], list[list[float]]] = defaultdict(
        lambda: [[] for _ in range(windows)]
    )
    for o in outcomes:
        for i, cell in enumerate(o.cells):
            if cell is not None:
                acc[(o.optimizer, o.samples)][i].append(cell[1])
    return {k: tuple(mean_se(v) for v in lists) for k, lists in acc.items()}


def sturdy(cells: tuple[Cell, ...], trials: int) -> tuple[bool, ...]:
    """Which windows at least half of the trials filled."""
    return tuple(c.mean is not None and c.count >= math.ceil(trials / 2) for c in cells)


def best_cell(cells: tuple[Cell, ...], trials: int) -> Cell:
    """The best mean among windows filled by at least half the trials (else any filled one)."""
    filled = [c for c in cells if c.mean is not None]
    strong = [c for c, ok in zip(cells, sturdy(cells, trials), strict=True) if ok] or filled
    return max(strong, key=lambda c: c.mean, default=Cell(None, None, 0))


@attrs.frozen
class MatchedBest:
    """Two optimizers' best cells over the windows both filled in at least half the trials."""

    windows: tuple[int, ...]
    mine: Cell
    reference: Cell

    @property
    def gap(self) -> float | None:
        if self.mine.mean is None or self.reference.mean is None:
            return None
        return self.mine.mean - self.reference.mean


def matched_best(mine: tuple[Cell, ...], reference: tuple[Cell, ...], trials: int) -> MatchedBest:
    both = tuple(
        i
        for i, (a, b) in enumerate(
            zip(sturdy(mine, trials), sturdy(reference, trials), strict=True)
        )
        if a and b
    )
    empty = Cell(None, None, 0)
    return MatchedBest(
        both,
        max((mine[i] for i in both), key=lambda c: c.mean, default=empty),
        max((reference[i] for i in both), key=lambda c: c.mean, default=empty),
    )


def paired_gaps(
    outcomes: Iterable[TrialOutcome], optimizer: str, reference: str, samples: int, windows: int
) -> tuple[Cell, ...]:
    """Per window: mean and SE of (optimizer - reference) test accuracy over the trials where
    both have a model in that window (``count`` = number of pairs)."""
    mine: dict[int, TrialOutcome] = {}
    ref: dict[int, TrialOutcome] = {}
    for o in outcomes:
        if o.samples == samples and o.optimizer == optimizer:
            mine[o.trial] = o
        elif o.samples == samples and o.optimizer == reference:
            ref[o.trial] = o
    out = []
    for i in range(windows):
        diffs = [
            mine[t].cells[i][1] - ref[t].cells[i][1]
            for t in sorted(mine.keys() & ref.keys())
            if mine[t].cells[i] is not None and ref[t].cells[i] is not None
        ]
        out.append(mean_se(diffs))
    return tuple(out)


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
