"""Patch shapes (chapter 2, §2.5.3 / Table 2.4) as pixel masks, in pure Python.

Masks are computed here, not in a backend, so every backend sees the same pixels. Each shape also
knows its bounding box (`size`) and pixel count (`area`) by arithmetic, so the checker compares
a shape with the input without materialising a single pixel: `square(10**18)` is refused at once,
and `mask()` is only called once a shape is known to fit.
"""

from __future__ import annotations

import enum
import math

import attrs

from .span import Span, span_field
from .validators import FieldError, at_least, nonempty, to_tuple

MaskRows = tuple[tuple[bool, ...], ...]

#: the most cells (height x width of the bounding box) a mask is ever materialised with, a
#: 2048x2048 patch; `threatlang check` refuses larger shapes, so `mask()` never hangs a run
MAX_MASK_CELLS = 2**22


class Orientation(enum.Enum):
    HORIZONTAL = "horizontal"
    VERTICAL = "vertical"
    DIAGONAL = "diagonal"
    ANTIDIAGONAL = "antidiagonal"


def _rows(height: int, width: int, on) -> MaskRows:
    if height * width > MAX_MASK_CELLS:
        raise ValueError(f"a {height}x{width} mask exceeds {MAX_MASK_CELLS} cells")
    return tuple(tuple(bool(on(r, c)) for c in range(width)) for r in range(height))


@attrs.frozen
class Square:
    """An n×n patch."""

    n: int = attrs.field(validator=at_least(1))
    span: Span | None = span_field()

    def size(self) -> tuple[int, int]:
        return self.n, self.n

    def area(self) -> int:
        return self.n * self.n

    def mask(self) -> MaskRows:
        return _rows(self.n, self.n, lambda r, c: True)


@attrs.frozen
class Rectangle:
    """An h×w patch."""

    height: int = attrs.field(validator=at_least(1))
    width: int = attrs.field(validator=at_least(1))
    span: Span | None = span_field()

    def size(self) -> tuple[int, int]:
        return self.height, self.width

    def area(self) -> int:
        return self.height * self.width

    def mask(self) -> MaskRows:
        return _rows(self.height, self.width, lambda r, c: True)


@attrs.frozen
class Line:
    """n pixels in a row, a column, or along a diagonal."""

    n: int = attrs.field(validator=at_least(1))
    orientation: Orientation = attrs.field(default=Orientation.HORIZONTAL, converter=Orientation)
    span: Span | None = span_field()

    def size(self) -> tuple[int, int]:
        if self.orientation is Orientation.HORIZONTAL:
            return 1, self.n
        if self.orientation is Orientation.VERTICAL:
            return self.n, 1
        return self.n, self.n

    def area(self) -> int:
        return self.n

    def mask(self) -> MaskRows:
        n = self.n
        if self.orientation is Orientation.HORIZONTAL:
            return _rows(1, n, lambda r, c: True)
        if self.orientation is Orientation.VERTICAL:
            return _rows(n, 1, lambda r, c: True)
        if self.orientation is Orientation.DIAGONAL:
            return _rows(n, n, lambda r, c: r == c)
        return _rows(n, n, lambda r, c: r + c == n - 1)


@attrs.frozen
class Diamond:
    """Exactly `pixels` pixels filled outward from a centre in l1 distance (a rotated square).

    For 1, 5, 13, 25, ... pixels this is the full l1 ball; other counts take the next ring
    partially, in row-major order, so the pixel count always equals the square it is compared to.
    """

    pixels: int = attrs.field(validator=at_least(1))
    span: Span | None = span_field()

    def _radius(self) -> int:
        """The smallest l1 radius whose ball (2r^2 + 2r + 1 pixels) holds `pixels`."""
        radius = max(0, (math.isqrt(max(0, 2 * self.pixels - 1)) - 1) // 2)
        while 2 * radius * radius + 2 * radius + 1 < self.pixels:
            radius += 1
        return radius

    def area(self) -> int:
        return self.pixels

    def size(self) -> tuple[int, int]:
        """The cropped mask's height and width. The full ball of radius r-1 spans rows and
        columns 1..2r-1; the k outer-ring pixels are taken in row-major order: (0, r) first,
        then two per row, so column 0 joins at the 2r-th, column 2r at the (2r+1)-th and the
        bottom row only with the last (k = 4r)."""
        radius = self._radius()
        if radius == 0:
            return 1, 1
        k = self.pixels - (2 * (radius - 1) ** 2 + 2 * (radius - 1) + 1)
        height = 2 * radius + (1 if k == 4 * radius else 0)
        width = 2 * radius - 1 + (k >= 2 * radius) + (k >= 2 * radius + 1)
        return height, width

    def mask(self) -> MaskRows:
        radius = self._radius()
        size = 2 * radius + 1
        cells = sorted(
            ((abs(r - radius) + abs(c - radius), r, c) for r in range(size) for c in range(size)),
        )[: self.pixels]
        chosen = {(r, c) for _, r, c in cells}
        return _crop(_rows(size, size, lambda r, c: (r, c) in chosen))


@attrs.frozen
class Parallelogram:
    """h rows of w pixels, each row shifted `shift` pixels right of the one above (a sheared box)."""

    height: int = attrs.field(validator=at_least(1))
    width: int = attrs.field(validator=at_least(1))
    shift: int = attrs.field(default=1, validator=at_least(0))
    span: Span | None = span_field()

    def size(self) -> tuple[int, int]:
        return self.height, self.width + self.shift * (self.height - 1)

    def area(self) -> int:
        return self.height * self.width

    def mask(self) -> MaskRows:
        total = self.width + self.shift * (self.height - 1)
        return _rows(
            self.height, total, lambda r, c: r * self.shift <= c < r * self.shift + self.width
        )


def _to_mask(value) -> MaskRows:
    rows = to_tuple(value)
    return tuple(
        tuple(ch == "#" for ch in row) if isinstance(row, str) else tuple(bool(b) for b in row)
        for row in rows
    )


def _rectangular(instance, attribute, value: MaskRows) -> None:
    nonempty(instance, attribute, value)
    widths = {len(row) for row in value}
    if len(widths) != 1 or 0 in widths:
        raise FieldError(attribute.name, "all mask rows must have the same, non-zero length")
    if not any(any(row) for row in value):
        raise FieldError(attribute.name, "a mask needs at least one '#' pixel")


@attrs.frozen
class Mask:
    """An arbitrary pixel mask: rows of '#' (in the patch) and '.' (not)."""

    rows: MaskRows = attrs.field(converter=_to_mask, validator=_rectangular)
    span: Span | None = span_field()

    def size(self) -> tuple[int, int]:
        return len(self.rows), len(self.rows[0])

    def area(self) -> int:
        return sum(sum(row) for row in self.rows)

    def mask(self) -> MaskRows:
        return self.rows


Shape = Square | Rectangle | Line | Diamond | Parallelogram | Mask
SHAPES: dict[str, type] = {
    "square": Square,
    "rectangle": Rectangle,
    "line": Line,
    "diamond": Diamond,
    "parallelogram": Parallelogram,
    "mask": Mask,
}


def mask_size(shape: Shape) -> tuple[int, int]:
    """(height, width) of the shape's mask, by arithmetic (nothing is materialised)."""
    return shape.size()


def pixel_count(shape: Shape) -> int:
    return shape.area()


def _crop(rows: MaskRows) -> MaskRows:
    keep_r = [i for i, row in enumerate(rows) if any(row)]
    keep_c = [j for j in range(len(rows[0])) if any(row[j] for row in rows)]
    return tuple(tuple(rows[i][j] for j in keep_c) for i in keep_r)
