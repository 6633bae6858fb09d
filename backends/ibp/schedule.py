"""The ε warm-up and learning-rate schedules of §2.7.1, scaled to any number of epochs.

Optionally ``plain_epochs`` of ordinary training come first (Gowal et al. start so; tiny
networks otherwise collapse to a constant output, the trivial optimum of the bound loss).
The chapter trains MNIST for 100 epochs: the patch interval grows from the clean pixel value
(size 0) to the full value range over the first 61 epochs while the learning rate is held,
then the learning rate halves every 10 epochs. Here both lengths are fractions of ``epochs``.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Schedule:
    epochs: int = attrs.field(validator=attrs.validators.ge(1))
    warmup_epochs: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    halve_every: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    plain_epochs: int = attrs.field(default=0, validator=attrs.validators.ge(0))

    @classmethod
    def chapter(cls, epochs: int) -> Schedule:
        """§2.7.1 scaled: warm up over 61% of the epochs, halve the rate every 10%."""
        return cls(epochs, round(0.61 * epochs), max(1, round(0.1 * epochs)))

    def scale(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """Patch interval size in [0, 1] at a training step (1 = the full threat)."""
        progress = epoch - self.plain_epochs + (step + 1) / max(1, steps_per_epoch)
        if epoch < self.plain_epochs:
            return 0.0
        if self.warmup_epochs == 0:
            return 1.0
        return min(1.0, progress / self.warmup_epochs)

    def lr_factor(self, epoch: int) -> float:
        """1 while warming up, then halved at the start of every ``halve_every`` epochs."""
        hold = self.plain_epochs + self.warmup_epochs
        if epoch < hold:
            return 1.0
        return 0.5 ** ((epoch - hold) // self.halve_every + 1)
