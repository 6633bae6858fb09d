"""The root of the IR: one spec ties a model, data, threat, property and actions together."""

from __future__ import annotations

import attrs

from .actions import Action
from .properties import Property
from .refs import DataRef, Domain, ModelRef, Preprocess
from .span import Span, span_field
from .threats import Threat
from .validators import at_least, instance_of, to_tuple

LANGUAGE_VERSION = 1


@attrs.frozen
class Spec:
    """Cross-node rules (patch fits the input, actions the threat admits) live in `check.py`."""

    name: str = attrs.field(validator=instance_of(str))
    model: ModelRef | None = None
    data: DataRef | None = None
    threat: Threat | None = None
    require: Property | None = None
    actions: tuple[Action, ...] = attrs.field(factory=tuple, converter=to_tuple)
    domain: Domain | None = None
    preprocess: tuple[Preprocess, ...] = attrs.field(factory=tuple, converter=to_tuple)
    seed: int = attrs.field(default=0, validator=at_least(0))
    version: int = attrs.field(default=LANGUAGE_VERSION, validator=at_least(1))
    span: Span | None = span_field()
