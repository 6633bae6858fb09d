"""The root of the IR: one spec ties a model, data, threat, property and actions together."""

from __future__ import annotations

import attrs

from .actions import Action
from .properties import Property
from .refs import DataRef, Domain, ModelRef, Preprocess
from .span import Span, span_field
from .threats import Threat
from .validators import at_least, at_most, instance_of, to_tuple

LANGUAGE_VERSION = 1
#: seeds are 32-bit: every consumer (numpy's legacy seeding, torch's manual_seed, backends that
#: add small stream offsets) accepts them
SEED_MAX = 2**32 - 1


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
    seed: int = attrs.field(default=0, validator=[at_least(0), at_most(SEED_MAX)])
    version: int = attrs.field(default=LANGUAGE_VERSION, validator=at_least(1))
    span: Span | None = span_field()
