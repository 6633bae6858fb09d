"""Options of the landscape backend's actions (bound from a spec by ``bind_options``).

No torch here: the backend's light ``__init__`` binds these to check a spec.
"""

from __future__ import annotations

import attrs

_pos = attrs.validators.gt(0)


@attrs.frozen
class GuessCheckOptions:
    """``train guess_and_check { scale 1.0  max_guesses 100000  batch 2048 }``."""

    scale: float = attrs.field(default=1.0, validator=_pos)
    max_guesses: int = attrs.field(default=100_000, validator=_pos)
    guess_batch: int = attrs.field(default=2048, validator=_pos)


@attrs.frozen
class PatternSearchOptions:
    """``train pattern_search { step 1.0  shrink 2.0  max_evaluations 20000 }``."""

    step: float = attrs.field(default=1.0, validator=_pos)
    shrink: float = attrs.field(default=2.0, validator=attrs.validators.gt(1))
    max_evaluations: int = attrs.field(default=20_000, validator=_pos)


@attrs.frozen
class GreedyOptions:
    """``train random_greedy { sigma 1.0  shrink 2.0  patience 30000  max_evaluations 20000 }``."""

    sigma: float = attrs.field(default=1.0, validator=_pos)
    shrink: float = attrs.field(default=2.0, validator=attrs.validators.gt(1))
    patience: int = attrs.field(default=30_000, validator=_pos)
    max_evaluations: int = attrs.field(default=20_000, validator=_pos)


@attrs.frozen
class SGDOptions:
    """``train standard { epochs 500  lr 0.01  momentum 0.9 }``: epochs are full-batch steps."""

    momentum: float = attrs.field(
        default=0.9, validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.lt(1))
    )
    weight_decay: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    patience: int = attrs.field(default=200, validator=_pos)


@attrs.frozen
class VolumeOptions:
    """``evaluate volume``: the few-shot comparison grid (Table 7.2) and the poison table (7.1)."""

    samples: tuple[int, ...] = attrs.field(default=(2, 4, 8, 16, 32))
    trials: int = attrs.field(default=4, validator=_pos)
    loss_bins: tuple[float, ...] = attrs.field(default=(0.32, 0.34, 0.36, 0.38, 0.4, 0.45, 0.5))
    standardise: bool = True
    linear_baseline: bool = True
    poison: bool = True
    poison_val: int = attrs.field(default=64, validator=_pos)
    poison_steps: int = attrs.field(default=1500, validator=_pos)

    @samples.validator
    def _samples(self, _a: attrs.Attribute, value: tuple[int, ...]) -> None:
        if not value or any(v < 2 for v in value):
            raise ValueError(f"samples must be training-set sizes of at least 2, got {value}")

    @loss_bins.validator
    def _bins(self, _a: attrs.Attribute, value: tuple[float, ...]) -> None:
        if (
            len(value) < 2
            or any(a >= b for a, b in zip(value, value[1:], strict=False))
            or value[0] < 0
        ):
            raise ValueError(f"loss_bins must be at least two ascending edges >= 0, got {value}")


@attrs.frozen
class WedgeOptions:
    """``evaluate wedge``: the toy problem of §7.3 and its decision-boundary figure."""

    widths: tuple[int, ...] = attrs.field(default=(2, 4, 10, 15, 20))
    draws: int = attrs.field(default=3, validator=_pos)
    train_points: int = attrs.field(default=11, validator=attrs.validators.ge(2))
    test_points: int = attrs.field(default=5, validator=_pos)
    margin: float = attrs.field(default=0.15, validator=attrs.validators.ge(0))
    loss_below: float = attrs.field(default=0.4, validator=_pos)
    max_guesses: int = attrs.field(default=400_000, validator=_pos)
    poison_steps: int = attrs.field(default=2000, validator=_pos)
    poison_weight: float = attrs.field(default=0.3, validator=_pos)

    @widths.validator
    def _widths(self, _a: attrs.Attribute, value: tuple[int, ...]) -> None:
        if not value or any(w < 1 for w in value):
            raise ValueError(f"widths must be positive hidden-layer sizes, got {value}")
