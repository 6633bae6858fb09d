"""Threat models: what an adversary may change (chapters 2–6)."""

from __future__ import annotations

import enum
from typing import ClassVar

import attrs

from .shapes import Shape, mask_size
from .span import Span, span_field
from .validators import (
    FieldError,
    at_least,
    each,
    instance_of,
    nonempty,
    nonnegative,
    optional,
    positive,
    to_float,
    to_tuple,
)


# ---------------------------------------------------------------- patch locations (chapter 2)
@attrs.frozen
class AllLocations:
    """Every position where the patch fits inside the image."""

    span: Span | None = span_field()

    def positions(self, patch_hw: tuple[int, int], image_hw: tuple[int, int]):
        return _grid(patch_hw, image_hw, 1)

    def count(self, patch_hw: tuple[int, int], image_hw: tuple[int, int]) -> int:
        """How many positions `positions` yields, by arithmetic."""
        return _grid_count(patch_hw, image_hw, 1)


@attrs.frozen
class Corners:
    """The four corners only (the weak 'corners' attack setting of §2.3)."""

    span: Span | None = span_field()

    def positions(self, patch_hw, image_hw):
        rows = sorted({0, image_hw[0] - patch_hw[0]})
        cols = sorted({0, image_hw[1] - patch_hw[1]})
        return tuple((r, c) for r in rows for c in cols)

    def count(self, patch_hw, image_hw) -> int:
        if not _fits(patch_hw, image_hw):
            return 0
        return len({0, image_hw[0] - patch_hw[0]}) * len({0, image_hw[1] - patch_hw[1]})


@attrs.frozen
class Stride:
    """Every k-th position in each direction."""

    k: int = attrs.field(validator=at_least(1))
    span: Span | None = span_field()

    def positions(self, patch_hw, image_hw):
        return _grid(patch_hw, image_hw, self.k)

    def count(self, patch_hw, image_hw) -> int:
        return _grid_count(patch_hw, image_hw, self.k)


def _points(value) -> tuple[tuple[int, int], ...]:
    return tuple(tuple(p) for p in to_tuple(value))


def _valid_points(instance, attribute, value) -> None:
    nonempty(instance, attribute, value)
    for p in value:
        if len(p) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in p):
            raise FieldError(attribute.name, f"a location is (row, column) >= 0, got {p}")


@attrs.frozen
class Explicit:
    """A listed set of (row, column) top-left positions."""

    points: tuple[tuple[int, int], ...] = attrs.field(converter=_points, validator=_valid_points)
    span: Span | None = span_field()

    def positions(self, patch_hw, image_hw):
        return self.points

    def count(self, patch_hw, image_hw) -> int:
        return len(self.points)


Locations = AllLocations | Corners | Stride | Explicit


def _fits(patch_hw, image_hw) -> bool:
    return patch_hw[0] <= image_hw[0] and patch_hw[1] <= image_hw[1]


def _grid_count(patch_hw, image_hw, step: int) -> int:
    if not _fits(patch_hw, image_hw):
        return 0
    return ((image_hw[0] - patch_hw[0]) // step + 1) * ((image_hw[1] - patch_hw[1]) // step + 1)


def _grid(patch_hw, image_hw, step: int):
    rows = range(0, image_hw[0] - patch_hw[0] + 1, step)
    cols = range(0, image_hw[1] - patch_hw[1] + 1, step)
    return tuple((r, c) for r in rows for c in cols)


@attrs.frozen
class ValueRange:
    """The values a patched pixel may take (after the data's own scaling)."""

    low: float = attrs.field(converter=to_float, validator=instance_of(float))
    high: float = attrs.field(converter=to_float, validator=instance_of(float))
    span: Span | None = span_field()

    def __attrs_post_init__(self) -> None:
        if not self.low < self.high:
            raise FieldError("high", f"the range needs low < high, got [{self.low}, {self.high}]")


@attrs.frozen
class PatchSet:
    """The union over shapes and locations of patches whose pixels take any value in `values`."""

    family: ClassVar[str] = "patch"  # the threat family backends declare they handle

    shapes: tuple[Shape, ...] = attrs.field(converter=to_tuple, validator=nonempty)
    locations: Locations = attrs.field(factory=AllLocations)
    values: ValueRange = attrs.field(factory=lambda: ValueRange(0.0, 1.0))
    span: Span | None = span_field()

    def largest(self) -> tuple[int, int]:
        sizes = [mask_size(s) for s in self.shapes]
        return max(h for h, _ in sizes), max(w for _, w in sizes)

    def placements(self, image_hw: tuple[int, int]) -> int:
        """How many (shape, position) pairs an attack or a certificate enumerates on an
        `image_hw` input, by arithmetic: the work the spec asks for, known before any of it."""
        return sum(self.locations.count(mask_size(s), image_hw) for s in self.shapes)


# ---------------------------------------------------------------- lp balls (chapters 3 and 5)
class Target(enum.Enum):
    INPUT = "input"
    PARAMETERS = "parameters"


class Norm(enum.Enum):
    L2 = "l2"
    LINF = "linf"


def _radii(value) -> tuple[float, ...]:
    return tuple(to_float(v) for v in to_tuple(value))


@attrs.frozen
class LpBall:
    """Every point within each listed radius of the input (or of the parameters)."""

    target: Target = attrs.field(converter=Target)
    norm: Norm = attrs.field(converter=Norm)
    radii: tuple[float, ...] = attrs.field(
        converter=_radii, validator=[nonempty, each(nonnegative)]
    )
    span: Span | None = span_field()

    @property
    def family(self) -> str:
        """Balls around the input and around the parameters are different threat families."""
        return "input ball" if self.target is Target.INPUT else "parameter ball"

    @property
    def eps(self) -> float:
        return max(self.radii)


# ---------------------------------------------------------------- bid supports (chapter 4)
@attrs.frozen
class BidSupport:
    """Valuations in the box [low, high]^(agents×items); `agent` (or every agent) may misreport."""

    family: ClassVar[str] = "bid support"

    agents: int = attrs.field(validator=at_least(1))
    items: int = attrs.field(validator=at_least(1))
    low: float = attrs.field(default=0.0, converter=to_float, validator=instance_of(float))
    high: float = attrs.field(default=1.0, converter=to_float, validator=instance_of(float))
    agent: int | None = attrs.field(default=None, validator=optional(at_least(0)))
    span: Span | None = span_field()

    def __attrs_post_init__(self) -> None:
        if not self.low < self.high:
            raise FieldError("valuations", f"needs low < high, got [{self.low}, {self.high}]")
        if self.agent is not None and self.agent >= self.agents:
            raise FieldError(
                "misreport", f"agent {self.agent} does not exist (agents are 0..{self.agents - 1})"
            )


# ---------------------------------------------------------------- pyramids (chapter 6)
def _ints(value) -> tuple[int, ...]:
    return to_tuple(value)


def _floats(value) -> tuple[float, ...]:
    return tuple(to_float(v) for v in to_tuple(value))


@attrs.frozen
class Pyramid:
    """δ = Σ_s m_s · C_B(δ_s) where s×s tiles share one parameter (6.3), clipped to `radius`."""

    family: ClassVar[str] = "pyramid"

    scales: tuple[int, ...] = attrs.field(converter=_ints, validator=[nonempty, each(at_least(1))])
    multipliers: tuple[float, ...] = attrs.field(
        converter=_floats, validator=[nonempty, each(positive)]
    )
    radius: float = attrs.field(converter=to_float, validator=nonnegative)
    norm: Norm = attrs.field(default=Norm.LINF, converter=Norm)
    universal: bool = attrs.field(default=False, validator=instance_of(bool))
    span: Span | None = span_field()

    def __attrs_post_init__(self) -> None:
        if len(self.scales) != len(self.multipliers):
            raise FieldError(
                "multipliers",
                f"needs one multiplier per scale ({len(self.scales)} scales, "
                f"{len(self.multipliers)} multipliers)",
            )


# ---------------------------------------------------------------- input boxes (VNN-LIB style)
def _bounds(value) -> tuple[float, ...]:
    return tuple(to_float(v) for v in to_tuple(value))


def _finite_all(instance, attribute, value) -> None:
    nonempty(instance, attribute, value)
    for v in value:
        if isinstance(v, bool) or not isinstance(v, float) or v != v or abs(v) == float("inf"):
            raise FieldError(attribute.name, f"bounds are finite numbers, got {v!r}")


@attrs.frozen
class InputBox:
    """Every input x with `lower[i] <= x[i] <= upper[i]` for each (flattened) input dimension i.

    Absolute, not around a data point: the input region of a VNN-LIB property."""

    family: ClassVar[str] = "input box"

    lower: tuple[float, ...] = attrs.field(converter=_bounds, validator=_finite_all)
    upper: tuple[float, ...] = attrs.field(converter=_bounds, validator=_finite_all)
    span: Span | None = span_field()

    def __attrs_post_init__(self) -> None:
        if len(self.lower) != len(self.upper):
            raise FieldError(
                "upper",
                f"needs one bound per dimension ({len(self.lower)} lower, {len(self.upper)} upper)",
            )
        for i, (lo, hi) in enumerate(zip(self.lower, self.upper, strict=True)):
            if lo > hi:
                raise FieldError("upper", f"dimension {i} has lower {lo} > upper {hi}")

    @property
    def dims(self) -> int:
        return len(self.lower)


def _box_tuple(value) -> tuple[InputBox, ...]:
    return tuple(to_tuple(value))


def _boxes(instance, attribute, value) -> None:
    if len(value) < 2:
        raise FieldError(attribute.name, f"a union needs at least two boxes, got {len(value)}")
    for i, box in enumerate(value):
        if not isinstance(box, InputBox):
            raise FieldError(attribute.name, f"box {i} is a {type(box).__name__}, not a box")
    dims = {box.dims for box in value}
    if len(dims) != 1:
        raise FieldError(
            attribute.name, f"the boxes have different dimensions ({', '.join(map(str, dims))})"
        )


@attrs.frozen
class BoxUnion:
    """Every input inside at least one of `boxes`: a VNN-LIB property whose input constraint
    is a disjunction (ACAS Xu property 6). One property, one verdict: it holds when it holds
    on every box, and is violated when it is violated on any."""

    family: ClassVar[str] = "input box"

    boxes: tuple[InputBox, ...] = attrs.field(converter=_box_tuple, validator=_boxes)
    span: Span | None = span_field()

    @property
    def dims(self) -> int:
        return self.boxes[0].dims


def input_boxes(threat: InputBox | BoxUnion) -> tuple[InputBox, ...]:
    """The boxes of an input box threat (one, or each box of a union)."""
    return threat.boxes if isinstance(threat, BoxUnion) else (threat,)


Threat = PatchSet | LpBall | BidSupport | Pyramid | InputBox | BoxUnion


def threat_family(threat: object | None) -> str | None:
    """The family name backends declare (`None`: a spec without a threat). A threat class
    names its family with a `family` attribute; an unknown class is its own family."""
    if threat is None:
        return None
    return getattr(threat, "family", type(threat).__name__)
