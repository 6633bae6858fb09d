"""What to do with the threat: train, certify, smooth, attack, evaluate (chained in order)."""

from __future__ import annotations

import enum

import attrs

from .options import Option, options_field
from .span import Span, span_field
from .validators import (
    FieldError,
    at_least,
    choice_field,
    instance_of,
    nonempty,
    open_unit,
    optional,
    positive,
    to_float,
    to_tuple,
)


@attrs.frozen
class Train:
    strategy: str = choice_field()
    k: int | None = attrs.field(default=None, validator=optional(at_least(1)))
    epochs: int = attrs.field(default=10, validator=at_least(1))
    lr: float = attrs.field(default=1e-3, converter=to_float, validator=positive)
    batch_size: int = attrs.field(default=64, validator=at_least(1))
    warmup: int = attrs.field(default=0, validator=at_least(0))
    options: tuple[Option, ...] = options_field()
    span: Span | None = span_field()

    def __attrs_post_init__(self) -> None:
        if self.warmup > self.epochs:
            raise FieldError("warmup", f"warm-up ({self.warmup}) exceeds epochs ({self.epochs})")


@attrs.frozen
class Certify:
    method: str = choice_field()
    time_limit: float | None = attrs.field(
        default=None, converter=attrs.converters.optional(to_float), validator=optional(positive)
    )
    threads: int | None = attrs.field(default=None, validator=optional(at_least(1)))
    options: tuple[Option, ...] = options_field()
    span: Span | None = span_field()


class SortBy(enum.Enum):
    OBJECTNESS = "objectness"
    LOCATION = "location"


class BinBy(enum.Enum):
    NONE = "none"
    LABEL = "label"
    LOCATION = "location"
    LABEL_LOCATION = "label_location"


def _enum_tuple(kind):
    def convert(value):
        return tuple(kind(v) for v in to_tuple(value))

    return convert


def _grid(value) -> tuple[int, int]:
    value = to_tuple(value)
    return tuple(value) if len(value) == 2 else (value[0], value[0])


def _grid_ok(instance, attribute, value) -> None:
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        raise FieldError(attribute.name, f"a grid is (rows, columns) >= 1, got {value}")


@attrs.frozen
class DetectionEncoding:
    """How detections become a fixed-length vector before smoothing (§3.5, Algorithm 1)."""

    sorts: tuple[SortBy, ...] = attrs.field(
        default=(SortBy.OBJECTNESS,), converter=_enum_tuple(SortBy), validator=nonempty
    )
    bins: tuple[BinBy, ...] = attrs.field(
        default=(BinBy.NONE,), converter=_enum_tuple(BinBy), validator=nonempty
    )
    grid: tuple[int, int] = attrs.field(default=(3, 3), converter=_grid, validator=_grid_ok)
    max_boxes: int = attrs.field(default=20, validator=at_least(1))
    denoiser: str | None = attrs.field(default=None, validator=optional(instance_of(str)))
    span: Span | None = span_field()


@attrs.frozen
class Smooth:
    kind: str = choice_field()
    sigma: float = attrs.field(converter=to_float, validator=positive)
    samples: int = attrs.field(default=2000, validator=at_least(1))
    confidence: float = attrs.field(default=0.999, converter=to_float, validator=open_unit)
    percentile: float = attrs.field(default=0.5, converter=to_float, validator=open_unit)
    batch_size: int = attrs.field(default=500, validator=at_least(1))
    encoding: DetectionEncoding | None = None
    options: tuple[Option, ...] = options_field()
    span: Span | None = span_field()


class AttackLocations(enum.Enum):
    CORNERS = "corners"
    ANYWHERE = "anywhere"


@attrs.frozen
class Attack:
    method: str = choice_field()
    steps: int = attrs.field(default=40, validator=at_least(1))
    step_size: float | None = attrs.field(
        default=None, converter=attrs.converters.optional(to_float), validator=optional(positive)
    )
    restarts: int = attrs.field(default=1, validator=at_least(1))
    locations: AttackLocations | None = attrs.field(
        default=None, converter=attrs.converters.optional(AttackLocations)
    )
    options: tuple[Option, ...] = options_field()
    span: Span | None = span_field()


@attrs.frozen
class Evaluate:
    kind: str = choice_field()
    options: tuple[Option, ...] = options_field()
    span: Span | None = span_field()


Action = Train | Certify | Smooth | Attack | Evaluate
