"""Guess & Check (§7.4.1.1): sample parameters uniformly until one fits, vectorised.

Entries of each guessed parameter vector are i.i.d. uniform on ``[-a, a]``. A guess is
accepted only if it classifies every training example correctly *and* its training loss is
below the threshold; otherwise it is thrown away. Its only implicit bias is the geometry of the
loss landscape: the chance that a set of solutions is returned equals its share of the volume of
the accepted region, so ``1 / guesses`` estimates that volume (§7.6).

Guesses are drawn ``batch`` at a time and scored in one vectorised call
(:meth:`FlatModel.logits`); within a batch the *first* accepted guess in draw order wins, so the
result is exactly that of the one-at-a-time algorithm on the same random stream, and for a fixed
seed and batch size it is reproducible.

>>> fm = FlatModel(mlp(2, (8,), 2))
>>> res = guess_and_check(fm, x, y, (below(0.6),), GuessCheckConfig(), torch.Generator().manual_seed(0))
>>> res.hits[0].volume  # 1 / number of guesses
"""

from __future__ import annotations

import time

import attrs
import torch

from .config import GuessCheckConfig, LossKind
from .levels import LevelHit, LevelTracker, LossWindow
from .losses import accuracy, training_loss
from .models import FlatModel


@attrs.frozen
class GuessCheckResult:
    """One hit (or ``None`` when the budget ran out) per window, and the guesses spent."""

    hits: tuple[LevelHit | None, ...]
    guesses: int
    seconds: float

    @property
    def evaluations_per_second(self) -> float:
        return self.guesses / max(self.seconds, 1e-9)


def score(
    fm: FlatModel, thetas: torch.Tensor, x: torch.Tensor, y: torch.Tensor, kind: LossKind
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training loss and accuracy of every model in ``thetas``: two ``(models,)`` tensors."""
    with torch.no_grad():
        logits = fm.logits(thetas, x)
        return training_loss(logits, y, kind), accuracy(logits, y)


def guess_and_check(
    fm: FlatModel,
    x: torch.Tensor,
    y: torch.Tensor,
    windows: tuple[LossWindow, ...],
    config: GuessCheckConfig,
    generator: torch.Generator,
) -> GuessCheckResult:
    """Guess until every window has an accepted model or ``max_guesses`` is spent."""
    tracker = LevelTracker(windows)
    start = time.perf_counter()
    done = 0
    while not tracker.done and done < config.max_guesses:
        count = min(config.batch, config.max_guesses - done)
        thetas = fm.sample_uniform(count, config.bound, generator)
        loss, acc = score(fm, thetas, x, y, config.loss_kind)
        fits = acc >= 1.0
        for i, w in enumerate(tracker.windows):
            if tracker.hits[i] is not None:
                continue
            ok = torch.nonzero(fits & (loss >= w.low) & (loss < w.high)).flatten()
            if len(ok):
                j = int(ok[0])
                tracker.offer(thetas[j], float(loss[j]), float(acc[j]), done + j + 1)
        done += count
    return GuessCheckResult(tracker.result(), done, time.perf_counter() - start)
