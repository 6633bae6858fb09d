"""The training loop shared by every method: AdamW, warm-up + cosine, epoch timing, pass counts.

The chapter trains with AdamW (lr 1e-3, weight decay 0.1, linear warm-up); this loop keeps that
recipe at small scale. Only the update differs between methods (``Method.step``), so the time
per epoch and the passes per step compare like with like.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .counting import PassCount, count_passes
from .standard import Method


@attrs.frozen
class TrainConfig:
    epochs: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    batch_size: int = attrs.field(default=128, validator=attrs.validators.ge(1))
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    augment: bool = True


@attrs.frozen
class FitResult:
    seconds_per_epoch: tuple[float, ...]
    passes: PassCount
    steps: int
    examples: int
    final_loss: float

    @property
    def passes_per_step(self) -> float:
        """Forward+backward passes per training example (standard 1, UPAT 2, PAT-k k + 2).

        Counted rows of every backward over rows of training data, i.e. the cost of one update in
        units of a standard update on the same batch.
        """
        return self.passes.backward_rows / self.examples

    @property
    def calls_per_step(self) -> float:
        """Backward calls per update (PAT-k: k + 1; UPAT and standard: 1)."""
        return self.passes.backwards / self.steps


def random_shift(x: Tensor, pad: int, generator: torch.Generator) -> Tensor:
    """Translate each image by up to ``pad`` pixels (zero fill): the 'weak' augmentation."""
    n, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=generator.device).to(
        x.device
    )
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    return xp.permute(0, 2, 3, 1)[
        torch.arange(n, device=x.device)[:, None, None], rows, cols
    ].permute(0, 3, 1, 2)


def _lr_lambda(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        t = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


class Trainer:
    """Trains one model with one method an epoch at a time.

    Epoch-at-a-time lets a comparison interleave methods (epoch 1 of each, then epoch 2 ...), so
    load from other processes falls on every method alike when their epochs are timed.
    """

    def __init__(
        self,
        model: nn.Module,
        method: Method,
        x: Tensor,
        y: Tensor,
        cfg: TrainConfig,
        generator: torch.Generator,
    ) -> None:
        self.model, self.method, self.x, self.y, self.cfg = model, method, x, y, cfg
        self.generator = generator
        self.per_epoch = math.ceil(len(x) / cfg.batch_size)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        warmup = max(1, int(cfg.warmup_epochs * self.per_epoch))
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, _lr_lambda(cfg.epochs * self.per_epoch, warmup)
        )
        self.times: list[float] = []
        self.passes = PassCount()
        self.loss = math.nan

    def epoch(self) -> float:
        """Run the next epoch; returns its wall time in seconds (training only)."""
        cfg, n, e = self.cfg, len(self.x), len(self.times)
        self.model.train()
        start = time.perf_counter()
        with count_passes(self.model) as passes:
            g = self.generator
            order = torch.randperm(n, generator=g, device=g.device).to(self.x.device)
            for b in range(self.per_epoch):
                idx = order[b * cfg.batch_size : (b + 1) * cfg.batch_size]
                xb, yb = self.x[idx], self.y[idx]
                if cfg.augment:
                    xb = random_shift(xb, 2, self.generator)
                self.loss = self.method.step(self.model, xb, yb, self.opt, e + b / self.per_epoch)
                self.sched.step()
        self.times.append(time.perf_counter() - start)
        self.passes = self.passes.plus(passes)
        return self.times[-1]

    def result(self) -> FitResult:
        epochs = len(self.times)
        return FitResult(
            tuple(self.times), self.passes, epochs * self.per_epoch, epochs * len(self.x), self.loss
        )


def fit(
    model: nn.Module,
    method: Method,
    x: Tensor,
    y: Tensor,
    cfg: TrainConfig,
    generator: torch.Generator,
) -> FitResult:
    """Train ``model`` in place with ``method`` for ``cfg.epochs``; timings and pass counts."""
    trainer = Trainer(model, method, x, y, cfg, generator)
    for _ in range(cfg.epochs):
        trainer.epoch()
    return trainer.result()
