"""What a backend accepts, declared once as data.

A backend states its threat families, properties, action choices (each with its typed options
class and defaults), the data sources it generates and its builtin architectures in one
`Capabilities` value. `threatlang check` (admission and option errors), backend selection and
capability errors all read these declarations, so the IR knows nothing of any backend and a new
backend is a new package plus an entry point, with no core edit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from threatlang.ir import Attack, Certify, Evaluate, Smooth, Train

#: the summary metric every certifying backend reports under this one name: how many items it
#: certified that its own strongest attack (or exact check) then falsified. Always 0 unless
#: the certificate is unsound; the conformance suite asserts it on data where something is
#: certified.
SOUNDNESS_COUNTER = "soundness_violations"

#: the action classes and the IR field that holds each one's choice
CHOICE_FIELD: Mapping[type, str] = {
    Train: "strategy",
    Certify: "method",
    Smooth: "kind",
    Attack: "method",
    Evaluate: "kind",
}

#: how an action class is named in the language and in messages
VERB: Mapping[type, str] = {
    Train: "train",
    Certify: "certify",
    Smooth: "smooth",
    Attack: "attack",
    Evaluate: "evaluate",
}

#: what the choice of each verb is called in "unknown ..." messages
CHOICE_NOUN: Mapping[type, str] = {
    Train: "training strategy",
    Certify: "certification method",
    Smooth: "smoothing kind",
    Attack: "attack",
    Evaluate: "evaluation",
}


def choice_of(action: object) -> str:
    """The backend-defined name an action carries (`train all_patch` -> "all_patch")."""
    return getattr(action, CHOICE_FIELD[type(action)])


def verb_of(action: object) -> str:
    return VERB[type(action)]


def _families(value: Iterable[str | None] | None) -> frozenset[str | None] | None:
    return None if value is None else frozenset(value)


@attrs.frozen
class Offer:
    """One action a backend implements: `VERB CHOICE`, with its options class.

    `families` limits the offer to some of the backend's threat families (None: all of them);
    `takes_k` marks strategies written `NAME(k)`; `options` is a frozen attrs class whose field
    defaults are the option defaults (None: the action takes no options). `when` narrows an
    offer to specs of a certain form (detection vs. regression smoothing share `smooth median`
    with different options); offers are matched in order."""

    action: type
    choice: str = attrs.field(converter=str)
    options: type | None = None
    families: frozenset[str | None] | None = attrs.field(default=None, converter=_families)
    takes_k: bool = False
    when: Callable[[Any], bool] | None = attrs.field(default=None, eq=False)

    def admits(self, family: str | None, spec: Any = None) -> bool:
        if self.families is not None and family not in self.families:
            return False
        return self.when is None or spec is None or self.when(spec)

    @property
    def usage(self) -> str:
        return f"{self.choice}(k)" if self.takes_k else self.choice


@attrs.frozen
class DataOffer:
    """A data source the backend generates itself, with the options its block may carry."""

    source: str = attrs.field(converter=str)
    options: type | None = None


@attrs.frozen
class Capabilities:
    """Everything a backend accepts. `priority` orders selection: the installed backend with
    the lowest priority that accepts a whole spec runs it."""

    families: frozenset[str | None] = attrs.field(converter=frozenset)
    properties: frozenset[type] = attrs.field(converter=frozenset, factory=frozenset)
    offers: tuple[Offer, ...] = attrs.field(converter=tuple, factory=tuple)
    data: tuple[DataOffer, ...] = attrs.field(converter=tuple, factory=tuple)
    model_options: type | None = None
    #: builtin architecture name -> "module:function" (imported only when building a model)
    architectures: Mapping[str, str] = attrs.field(factory=dict)
    #: modules that must be importable to run (found without importing them)
    required_modules: tuple[str, ...] = attrs.field(converter=tuple, default=("torch",))
    priority: int = 100
    #: the typed schema of `Summary.metrics` (a frozen attrs class whose fields are documented
    #: with their meaning and unit); the conformance suite builds it from every summary
    summary: type | None = None
    #: does the backend claim certificates? Certifying backends report the shared soundness
    #: counter `SOUNDNESS_COUNTER` and run the conformance suite's soundness checks
    certifies: bool = False

    def offer(self, action: object, family: str | None, spec: Any = None) -> Offer | None:
        """The offer covering `action` on a threat of `family` (in `spec`), if any."""
        kind, choice = type(action), choice_of(action)
        for o in self.offers:
            if o.action is kind and o.choice == choice and o.admits(family, spec):
                return o
        return None

    def offers_for(self, kind: type, family: str | None) -> Iterator[Offer]:
        return (o for o in self.offers if o.action is kind and o.admits(family))

    def data_offer(self, source: str) -> DataOffer | None:
        return next((d for d in self.data if d.source == source), None)

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary (for `threatlang backends` and documentation)."""
        return {
            "families": sorted("no threat" if f is None else f for f in self.families),
            "properties": sorted(p.keyword for p in self.properties),
            "actions": sorted({f"{VERB[o.action]} {o.usage}" for o in self.offers}),
            "data": sorted(d.source for d in self.data),
            "architectures": sorted(self.architectures),
            "requires": list(self.required_modules),
        }


__all__ = [
    "SOUNDNESS_COUNTER",
    "CHOICE_FIELD",
    "CHOICE_NOUN",
    "Capabilities",
    "DataOffer",
    "Offer",
    "VERB",
    "choice_of",
    "verb_of",
]
