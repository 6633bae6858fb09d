"""What must hold for every point of the threat set."""

from __future__ import annotations

import attrs

from .span import Span, span_field
from .validators import FieldError, closed_unit, nonnegative, to_float


@attrs.frozen
class LabelUnchanged:
    """The predicted label equals the true label everywhere in the threat set."""

    span: Span | None = span_field()


def _iou(instance, attribute, value) -> None:
    closed_unit(instance, attribute, value)
    if value == 0:
        raise FieldError(
            attribute.name, "an IoU threshold of 0 is always met; use a value in (0, 1]"
        )


@attrs.frozen
class IoUAtLeast:
    """Every certified box keeps IoU >= tau with the clean one (chapter 3)."""

    tau: float = attrs.field(converter=to_float, validator=_iou)
    span: Span | None = span_field()


@attrs.frozen
class RegretAtMost:
    """No agent gains more than r utility by misreporting (chapter 4)."""

    r: float = attrs.field(converter=to_float, validator=nonnegative)
    span: Span | None = span_field()


@attrs.frozen
class AccuracyAtLeast:
    """Accuracy (e.g. on a watermark trigger set) stays at least a (chapter 5)."""

    a: float = attrs.field(converter=to_float, validator=closed_unit)
    span: Span | None = span_field()


@attrs.frozen
class OutputBounds:
    """Report certified bounds on each output coordinate (regression, chapter 3)."""

    span: Span | None = span_field()


Property = LabelUnchanged | IoUAtLeast | RegretAtMost | AccuracyAtLeast | OutputBounds
