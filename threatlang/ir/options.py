"""Backend-specific knobs that the language carries without interpreting.

The language fixes the fields every backend shares (epochs, sigma, steps, …); anything else in
an action block becomes an `Option`. Each backend binds options to its own frozen config class
(`threatlang.backends.base.bind_options`), which reports unknown names and wrong types with the
option's span — so the IR never changes when a backend gains a knob.
"""

from __future__ import annotations

import attrs

from .span import Span, span_field

OptionValue = bool | int | float | str | tuple


@attrs.frozen
class Option:
    name: str
    value: OptionValue
    unit: str | None = None
    span: Span | None = span_field()


def _options(value) -> tuple[Option, ...]:
    return tuple(value)


def options_field():
    return attrs.field(factory=tuple, converter=_options, kw_only=True)
