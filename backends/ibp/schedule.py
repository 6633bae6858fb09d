"""The ε warm-up and learning-rate schedules of §2.7.1, scaled to any number of epochs.

The chapter trains MNIST for 100 epochs: the patch interval grows from the clean pixel value
(size 0) to the full value range over the first 61 epochs while the learning rate is held,
then the learning rate halves every 10 epochs. Here both lengths are fractions of ``epochs``.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Schedule:
    epochs: int = attrs.field(validator=attrs.validators.ge(1))
    warmup_fraction: float = attrs.field(
        default=0.61, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )
    halve_every_fraction: float = attrs.field(default=0.1, validator=attrs.validators.gt(0.0))

    @property
    def warmup_epochs(self) -> int:
        return round(self.warmup_fraction * self.epochs)

    @property
    def halve_every(self) -> int:
        return max(1, round(self.halve_every_fraction * self.epochs))

    def scale(self, epoch: int, step: int, steps_per_epoch: int) -> float:
        """Patch interval size in [0, 1] at a training step (1 = the full threat)."""
        if self.warmup_epochs == 0:
            return 1.0
        progress = epoch + (step + 1) / max(1, steps_per_epoch)
        return min(1.0, progress / self.warmup_epochs)

    def lr_factor(self, epoch: int) -> float:
        """1 while warming up, then halved at the start of every ``halve_every`` epochs."""
        if epoch < self.warmup_epochs:
            return 1.0
        return 0.5 ** ((epoch - self.warmup_epochs) // self.halve_every + 1)
