"""The radius schedule, eq. (6.5).

A large radius speeds convergence early, but the perturbed images are far out of distribution;
decreasing it linearly after ``epoch_start`` keeps the early speed without the late damage:

    r(e) = r_start + (r_end - r_start) * max(e - e_start, 0) / (e_end - e_start)

clamped to ``r_end`` after ``e_end``. The chapter uses r_end = 0.1 * r_start from epoch 30 of 300.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class RadiusSchedule:
    """Linear decay from ``start`` to ``end`` between ``epoch_start`` and ``epoch_end`` (0-based)."""

    start: float
    end: float | None = None
    epoch_start: int = 0
    epoch_end: int = 1

    def __attrs_post_init__(self) -> None:
        if self.start < 0 or (self.end is not None and self.end < 0):
            raise ValueError("radii must be non-negative")
        if self.end is not None and self.epoch_end <= self.epoch_start:
            raise ValueError(
                f"epoch_end ({self.epoch_end}) must come after epoch_start ({self.epoch_start})"
            )

    @classmethod
    def constant(cls, radius: float) -> RadiusSchedule:
        return cls(start=radius)

    @classmethod
    def decay(
        cls, radius: float, epochs: int, fraction: float = 0.1, start_fraction: float = 0.1
    ) -> RadiusSchedule:
        """The chapter's schedule scaled to ``epochs``: decay to ``fraction * radius``.

        Starts at ``start_fraction`` of training (epoch 30 of 300 in the chapter).
        """
        e0 = int(round(start_fraction * epochs))
        return cls(
            start=radius, end=fraction * radius, epoch_start=e0, epoch_end=max(epochs, e0 + 1)
        )

    def __call__(self, epoch: float) -> float:
        """Radius at (possibly fractional) ``epoch``."""
        if self.end is None:
            return self.start
        t = max(epoch - self.epoch_start, 0) / (self.epoch_end - self.epoch_start)
        return self.start + (self.end - self.start) * min(t, 1.0)
