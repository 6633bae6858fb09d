"""Cross-node semantic checks: does the patch fit the input, does the threat admit the action?

Single-node rules live in the IR validators; what needs two nodes at once lives here. Every
problem is a `Diagnostic` with the span of the node at fault; all of them are returned together.
"""

from __future__ import annotations

from .errors import Diagnostic
from .ir import (
    Certify,
    DataSource,
    Evaluate,
    Explicit,
    IoUAtLeast,
    ModelKind,
    PatchSet,
    Pyramid,
    Smooth,
    Spec,
    Train,
    mask_size,
)
from .ir.refs import CORE_SOURCES
from .ir.shapes import MAX_MASK_CELLS
from .ir.threats import BoxUnion, InputBox, threat_family

#: input shapes of the data sources whose shape is fixed
_SOURCE_SHAPES = {
    DataSource.DIGITS: (1, 8, 8),
    DataSource.MNIST: (1, 28, 28),
    DataSource.MNIST5K: (1, 28, 28),
    DataSource.CIFAR10: (3, 32, 32),
}


def family(spec: Spec) -> str | None:
    """The threat family of `spec` (`None`: no threat), as backends declare it."""
    return threat_family(spec.threat)


def input_shape(spec: Spec) -> tuple[int, ...] | None:
    """The input shape from `input { shape ... }`, else the data source's known shape."""
    if spec.domain is not None:
        return spec.domain.shape
    if spec.data is None or spec.data.source not in _SOURCE_SHAPES:
        return None
    shape = _SOURCE_SHAPES[spec.data.source]
    if spec.data.resize is not None:
        return (shape[0], spec.data.resize, spec.data.resize)
    return shape


def check_spec(spec: Spec, skip: frozenset[str] = frozenset()) -> list[Diagnostic]:
    """Every cross-node problem of `spec` (empty when it is well-formed).

    `skip` names parts that failed to lower (already reported), so their absence is not
    reported a second time as "missing"."""
    out: list[Diagnostic] = []
    _references(spec, out, skip)
    shape = input_shape(spec)
    _domain(spec, shape, out)
    if isinstance(spec.threat, PatchSet):
        _patch(spec.threat, shape, out)
    if isinstance(spec.threat, Pyramid):
        _pyramid(spec.threat, shape, out)
    if "threat" not in skip:
        _admission(spec, out)
    return out


#: what to stay silent about when a part failed to lower (its error is already reported)
_SILENT_WHEN_BROKEN = {
    "model": ("model reference", "never trains it", "unknown architecture"),
    "data": ("data reference",),
    "threat": ("no threat", "unknown architecture", "data reference"),  # a box needs none
    "require": ("says nothing must hold",),
    "actions": ("no action", "never trains it"),
}


def _references(spec: Spec, out: list[Diagnostic], skip: frozenset[str]) -> None:
    found: list[Diagnostic] = []
    _reference_problems(spec, found)
    silent = [m for k in skip for m in _SILENT_WHEN_BROKEN.get(k, ())]
    out.extend(d for d in found if not any(m in d.message for m in silent))


def _reference_problems(spec: Spec, out: list[Diagnostic]) -> None:
    if spec.model is None:
        out.append(
            Diagnostic(
                spec.span,
                f"spec '{spec.name}' has no model reference",
                'e.g. model small_cnn, or model state_dict("w.pt") { arch small_cnn }',
            )
        )
    if spec.data is None and not isinstance(spec.threat, InputBox | BoxUnion):  # boxes need no data
        out.append(
            Diagnostic(spec.span, f"spec '{spec.name}' has no data reference", "e.g. data digits")
        )
    if spec.threat is None and any(not isinstance(a, Train | Evaluate) for a in spec.actions):
        out.append(
            Diagnostic(
                spec.span,
                f"spec '{spec.name}' has no threat to certify, smooth or attack",
                "threat patch|l2_ball|linf_ball|bid_support|pyramid { ... }",
            )
        )
    if not spec.actions:
        out.append(
            Diagnostic(
                spec.span,
                f"spec '{spec.name}' has no action",
                "train, certify, smooth, attack or evaluate",
            )
        )
    needs_property = any(isinstance(a, Certify | Smooth) for a in spec.actions)
    if needs_property and spec.require is None and spec.threat is not None:
        out.append(
            Diagnostic(
                spec.span,
                f"spec '{spec.name}' certifies but says nothing must hold",
                "require label_unchanged (or the threat's property)",
            )
        )
    model = spec.model
    if model is not None and model.architecture is not None:
        from .backends.registry import architectures_for

        known = architectures_for(threat_family(spec.threat))
        if known and model.architecture not in known:
            out.append(
                Diagnostic(
                    model.span,
                    f"unknown architecture '{model.architecture}'",
                    "one of " + ", ".join(sorted(known)),
                )
            )


def untrained_builtin(spec: Spec) -> list[Diagnostic]:
    """A builtin model that nothing trains has no weights to run. Checked when a run starts
    (`api.validate`), not at parse time: a model handed to `run(spec, model=...)` supplies them."""
    model = spec.model
    if (
        model is not None
        and model.kind is ModelKind.BUILTIN
        and not any(isinstance(a, Train) for a in spec.actions)
    ):
        return [
            Diagnostic(
                model.span,
                f"builtin model '{model.name}' has no weights and the spec never trains it",
                'a `train ...` action, weights: state_dict("w.pt") { arch NAME }, or a '
                "module handed to threatlang.run(spec, model=...)",
            )
        ]
    return []


def _domain(spec: Spec, shape, out: list[Diagnostic]) -> None:
    dom, data = spec.domain, spec.data
    if dom is None or data is None or data.source not in _SOURCE_SHAPES:
        return
    expected = _SOURCE_SHAPES[data.source]
    if data.resize is not None:
        expected = (expected[0], data.resize, data.resize)
    if tuple(dom.shape) != expected:
        out.append(
            Diagnostic(
                dom.span,
                f"input shape {tuple(dom.shape)} does not match data "
                f"{data.source.value}, whose images are {expected}",
            )
        )


#: the most (shape, position) placements a patch threat may ask a run to enumerate per image
MAX_PLACEMENTS = 10_000_000


def _patch(threat: PatchSet, shape, out: list[Diagnostic]) -> None:
    """Sizes by arithmetic (`size`, `count`): nothing is enumerated before it is known to fit."""
    if shape is not None and len(shape) < 2:
        out.append(
            Diagnostic(threat.span, f"a patch needs an image input, but the input shape is {shape}")
        )
        return
    hw = None if shape is None else (shape[-2], shape[-1])
    found = len(out)
    for s in threat.shapes:
        h, w = mask_size(s)
        if hw is not None and (h > hw[0] or w > hw[1]):
            out.append(
                Diagnostic(s.span, f"patch {h}x{w} is larger than the {hw[0]}x{hw[1]} input")
            )
        elif h * w > MAX_MASK_CELLS:
            out.append(
                Diagnostic(
                    s.span, f"patch {h}x{w} exceeds the {MAX_MASK_CELLS} pixels a mask holds"
                )
            )
    if hw is None or len(out) > found:
        return
    if isinstance(threat.locations, Explicit):
        _explicit(threat, hw, out)
    total = threat.placements(hw)
    if total > MAX_PLACEMENTS:
        out.append(
            Diagnostic(
                threat.locations.span or threat.span,
                f"{total} patch placements per image exceed the {MAX_PLACEMENTS} a run "
                "enumerates; use stride(k), corners or fewer shapes",
            )
        )


def _explicit(threat: PatchSet, hw, out: list[Diagnostic]) -> None:
    """One diagnostic for all explicit locations that leave the input (not one per point)."""
    h, w = threat.largest()
    leaving = [(r, c) for r, c in threat.locations.points if r + h > hw[0] or c + w > hw[1]]
    if leaving:
        (r, c), more = leaving[0], len(leaving) - 1
        also = f" (and {more} more location{'s' if more > 1 else ''})" if more else ""
        out.append(
            Diagnostic(
                threat.locations.span,
                f"a {h}x{w} patch at ({r}, {c}) leaves the {hw[0]}x{hw[1]} input{also}",
            )
        )


def _pyramid(threat: Pyramid, shape, out: list[Diagnostic]) -> None:
    if shape is None or len(shape) < 2:
        return
    hw = (shape[-2], shape[-1])
    for s in threat.scales:
        if hw[0] % s or hw[1] % s:
            out.append(
                Diagnostic(
                    threat.span,
                    f"pyramid scale {s} does not divide the {hw[0]}x{hw[1]} input",
                    "scales that divide both sides",
                )
            )


def _admission(spec: Spec, out: list[Diagnostic]) -> None:
    """Does any installed backend offer each action and the property for this threat family?
    Reads only the backends' declarations (`Capabilities`), so a plugin extends the language."""
    from .backends.capabilities import CHOICE_NOUN, VERB, choice_of
    from .backends.registry import backends

    fam = family(spec)
    installed = backends()
    covering = [b.capabilities for b in installed if fam in b.capabilities.families]
    if not covering and spec.threat is not None:
        handled = sorted({f for b in installed for f in b.capabilities.families if f})
        out.append(
            Diagnostic(
                spec.threat.span,
                f"no installed backend handles {fam} threats",
                ", ".join(handled) or "install a backend",
            )
        )
    for action in spec.actions:
        kind, choice, verb = type(action), choice_of(action), VERB[type(action)]
        here = {o.choice: o for c in covering for o in c.offers_for(kind, fam)}
        if choice in here:
            continue
        anywhere = {
            o.choice: o for b in installed for o in b.capabilities.offers if o.action is kind
        }
        if choice not in anywhere:
            known = ", ".join(sorted(o.usage for o in anywhere.values())) or f"no {verb} action"
            out.append(Diagnostic(action.span, f"unknown {CHOICE_NOUN[kind]} '{choice}'", known))
            continue
        alt = ", ".join(sorted(o.usage for o in here.values())) or f"no {verb} action"
        out.append(Diagnostic(action.span, f"{_phrase(fam)} does not admit `{verb} {choice}`", alt))
    for action in spec.actions:
        if (
            isinstance(action, Smooth)
            and action.encoding is not None
            and not isinstance(spec.require, IoUAtLeast)
        ):
            out.append(
                Diagnostic(
                    action.encoding.span, "a detection encoding needs `require iou_at_least(tau)`"
                )
            )
    prop = spec.require
    admitted = {p for c in covering for p in c.properties}
    if prop is not None and type(prop) not in admitted:
        names = ", ".join(sorted(p.keyword for p in admitted)) or "no property"
        keyword = getattr(prop, "keyword", type(prop).__name__)
        out.append(Diagnostic(prop.span, f"{_phrase(fam)} cannot require {keyword}", names))
    data = spec.data
    if data is not None and data.source not in CORE_SOURCES:
        generated = {d.source for b in installed for d in b.capabilities.data}
        if data.source not in generated:
            known = sorted(CORE_SOURCES | generated)
            out.append(
                Diagnostic(data.span, f"unknown data source '{data.source}'", ", ".join(known))
            )


def _phrase(fam: str | None) -> str:
    return "a spec without a threat" if fam is None else f"a {fam} threat"


__all__ = ["check_spec", "family", "input_shape"]
