"""Single-node validators for IR fields; each failure names its field (see `FieldError`)."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable
from typing import Any

import attrs

from .span import Span


class FieldError(ValueError):
    """Raised by IR validators; names the field so the parser can point at the right token."""

    def __init__(self, field: str, message: str, span: Span | None = None):
        self.field = field
        self.span = span
        self.message = message
        super().__init__(f"{field}: {message}")


Validator = Callable[[Any, Any, Any], None]


def _fail(instance: Any, attribute: Any, message: str) -> None:
    raise FieldError(attribute.name, message, getattr(instance, "span", None))


def _finite(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(instance, attribute, f"expected a number, got {value!r}")
    if not math.isfinite(value):
        _fail(instance, attribute, f"must be finite, got {value}")


def positive(instance: Any, attribute: Any, value: Any) -> None:
    _finite(instance, attribute, value)
    if value <= 0:
        _fail(instance, attribute, f"must be > 0, got {value}")


def nonnegative(instance: Any, attribute: Any, value: Any) -> None:
    _finite(instance, attribute, value)
    if value < 0:
        _fail(instance, attribute, f"must be >= 0, got {value}")


def open_unit(instance: Any, attribute: Any, value: Any) -> None:
    """A probability strictly inside (0, 1): confidences and percentiles."""
    _finite(instance, attribute, value)
    if not 0 < value < 1:
        _fail(instance, attribute, f"must lie strictly between 0 and 1, got {value}")


def closed_unit(instance: Any, attribute: Any, value: Any) -> None:
    _finite(instance, attribute, value)
    if not 0 <= value <= 1:
        _fail(instance, attribute, f"must lie in [0, 1], got {value}")


def at_least(bound: int) -> Validator:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(instance, attribute, f"expected a whole number, got {value!r}")
        if value < bound:
            _fail(instance, attribute, f"must be >= {bound}, got {value}")

    return check


def at_most(bound: int) -> Validator:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value > bound:
            _fail(instance, attribute, f"must be <= {bound}, got {value}")

    return check


def optional(validator: Validator) -> Validator:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        if value is not None:
            validator(instance, attribute, value)

    return check


def each(validator: Validator) -> Validator:
    def check(instance: Any, attribute: Any, value: Any) -> None:
        for item in value:
            validator(instance, attribute, item)

    return check


def nonempty(instance: Any, attribute: Any, value: Any) -> None:
    if len(value) == 0:
        _fail(instance, attribute, "must not be empty")


def instance_of(*types: type) -> Validator:
    names = " or ".join(t.__name__ for t in types)

    def check(instance: Any, attribute: Any, value: Any) -> None:
        if not isinstance(value, types):
            _fail(instance, attribute, f"expected {names}, got {type(value).__name__}")

    return check


def to_tuple(value: Any) -> tuple:
    """Converter: lists (from Python users or JSON) become tuples so nodes stay hashable."""
    if isinstance(value, tuple):
        return value
    if isinstance(value, list):
        return tuple(value)
    return (value,)


def to_float(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _name(value) -> str:
    """A choice (strategy, method, kind) is a plain name; enum members give their value."""
    return value.value if isinstance(value, enum.Enum) else value


def _identifier(instance, attribute, value) -> None:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise FieldError(attribute.name, f"expected a lower-case name, got {value!r}")


_NAME = re.compile(r"[a-z_][a-z0-9_]*")


def choice_field():
    """The backend-defined choice of an action: which ones exist is declared by the installed
    backends (`threatlang.backends.base.Capabilities`) and checked by `threatlang.check`."""
    return attrs.field(converter=_name, validator=_identifier)
