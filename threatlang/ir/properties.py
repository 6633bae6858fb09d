"""What must hold for every point of the threat set."""

from __future__ import annotations

import enum
import math
from typing import ClassVar

import attrs

from .span import Span, span_field
from .validators import FieldError, closed_unit, nonnegative, to_float, to_tuple


@attrs.frozen
class LabelUnchanged:
    """The predicted label equals the true label everywhere in the threat set."""

    keyword: ClassVar[str] = "label_unchanged"  # how the language writes it

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

    keyword: ClassVar[str] = "iou_at_least"  # how the language writes it

    tau: float = attrs.field(converter=to_float, validator=_iou)
    span: Span | None = span_field()


@attrs.frozen
class RegretAtMost:
    """No agent gains more than r utility by misreporting (chapter 4)."""

    keyword: ClassVar[str] = "regret_at_most"  # how the language writes it

    r: float = attrs.field(converter=to_float, validator=nonnegative)
    span: Span | None = span_field()


@attrs.frozen
class AccuracyAtLeast:
    """Accuracy (e.g. on a watermark trigger set) stays at least a (chapter 5)."""

    keyword: ClassVar[str] = "accuracy_at_least"  # how the language writes it

    a: float = attrs.field(converter=to_float, validator=closed_unit)
    span: Span | None = span_field()


@attrs.frozen
class OutputBounds:
    """Report certified bounds on each output coordinate (regression, chapter 3)."""

    keyword: ClassVar[str] = "output_bounds"  # how the language writes it

    span: Span | None = span_field()


# ------------------------------------------------------------ general output properties
class Relation(enum.Enum):
    """How a linear form of the outputs compares with its right-hand side."""

    LE = "<="
    LT = "<"
    GE = ">="
    GT = ">"

    def negated(self) -> Relation:
        """The relation that holds exactly where this one fails."""
        return _NEGATED[self]


_NEGATED = {
    Relation.LE: Relation.GT,
    Relation.LT: Relation.GE,
    Relation.GE: Relation.LT,
    Relation.GT: Relation.LE,
}


def _coeffs(value) -> tuple[float, ...]:
    """Dense coefficients with trailing zeros dropped, so equal constraints compare equal."""
    out = [to_float(v) for v in to_tuple(value)]
    while out and out[-1] == 0:
        out.pop()
    return tuple(0.0 if v == 0 else v for v in out)  # -0.0 and 0.0 alike


def _some_output(instance, attribute, value) -> None:
    for v in value:
        if isinstance(v, bool) or not isinstance(v, float) or not math.isfinite(v):
            raise FieldError(attribute.name, f"coefficients are finite numbers, got {v!r}")
    if not value:
        raise FieldError(attribute.name, "a constraint must involve at least one output y[i]")


def _finite(instance, attribute, value) -> None:
    if isinstance(value, bool) or not isinstance(value, float) or not math.isfinite(value):
        raise FieldError(attribute.name, f"expected a finite number, got {value!r}")


@attrs.frozen
class LinearConstraint:
    """`sum_j coeffs[j] * y[j]  op  rhs` over the network's (flattened) outputs y."""

    coeffs: tuple[float, ...] = attrs.field(converter=_coeffs, validator=_some_output)
    op: Relation = attrs.field(converter=Relation)
    rhs: float = attrs.field(converter=to_float, validator=_finite)
    span: Span | None = span_field()

    @property
    def outputs(self) -> int:
        """How many outputs the constraint needs the network to have."""
        return len(self.coeffs)

    def text(self) -> str:
        """The constraint in the surface syntax: `y[0] <= y[1]`, `2*y[2] >= y[3] + 0.5`."""
        pos = [(j, c) for j, c in enumerate(self.coeffs) if c > 0]
        neg = [(j, -c) for j, c in enumerate(self.coeffs) if c < 0]
        if pos and neg:
            right = _sum(neg)
            if self.rhs:
                right += f" {'+' if self.rhs > 0 else '-'} {_num(abs(self.rhs))}"
            return f"{_sum(pos)} {self.op.value} {right}"
        left = _sum(pos) if pos else "-" + _sum(neg).replace(" + ", " - ")
        return f"{left} {self.op.value} {_num(self.rhs)}"


def _num(v: float) -> str:
    text = repr(float(v))
    return text[:-2] if text.endswith(".0") else text


def _sum(terms: list[tuple[int, float]]) -> str:
    return " + ".join(("" if c == 1 else f"{_num(c)}*") + f"y[{j}]" for j, c in terms)


def _parts(instance, attribute, value) -> None:
    if not value:
        raise FieldError(attribute.name, "must not be empty")
    for part in value:
        if not isinstance(part, LinearConstraint | Conjunction | Disjunction):
            raise FieldError(
                attribute.name, f"expected constraints, all or any, got {type(part).__name__}"
            )


@attrs.frozen
class Conjunction:
    """Every part holds (`all { ... }`)."""

    parts: tuple[Formula, ...] = attrs.field(converter=to_tuple, validator=_parts)
    span: Span | None = span_field()


@attrs.frozen
class Disjunction:
    """At least one part holds (`any { ... }`)."""

    parts: tuple[Formula, ...] = attrs.field(converter=to_tuple, validator=_parts)
    span: Span | None = span_field()


Formula = LinearConstraint | Conjunction | Disjunction


def _formula(instance, attribute, value) -> None:
    if not isinstance(value, LinearConstraint | Conjunction | Disjunction):
        raise FieldError(attribute.name, f"expected a formula, got {type(value).__name__}")


def constraints(formula: Formula) -> tuple[LinearConstraint, ...]:
    """Every linear constraint of `formula`, in order."""
    if isinstance(formula, LinearConstraint):
        return (formula,)
    return tuple(c for p in formula.parts for c in constraints(p))


@attrs.frozen
class OutputsSatisfy:
    """The network's outputs satisfy `formula` everywhere in the threat set (`require outputs`).

    VNN-LIB states the opposite (where a counterexample would be); interop negates."""

    keyword: ClassVar[str] = "outputs"  # how the language writes it

    formula: Formula = attrs.field(validator=_formula)
    span: Span | None = span_field()

    @property
    def outputs(self) -> int:
        return max(c.outputs for c in constraints(self.formula))


Property = (
    LabelUnchanged | IoUAtLeast | RegretAtMost | AccuracyAtLeast | OutputBounds | OutputsSatisfy
)


def violations(formula: Formula, limit: int = 4096) -> tuple[tuple[LinearConstraint, ...], ...]:
    """Where `formula` fails, as an `or` of `and`s of (negated) constraints: the VNN-LIB view
    (a counterexample's outputs meet every constraint of one term). `ValueError` beyond `limit`
    terms (negating an `all` of `any`s multiplies out)."""
    if isinstance(formula, LinearConstraint):
        return ((attrs.evolve(formula, op=formula.op.negated()),),)
    parts = [violations(p, limit) for p in formula.parts]
    if isinstance(formula, Conjunction):  # fails where any part fails
        return tuple(t for p in parts for t in p)
    out: list[tuple[LinearConstraint, ...]] = [()]
    for p in parts:  # an `any` fails where every part fails
        out = [a + b for a in out for b in p]
        if len(out) > limit:
            raise ValueError(
                f"the property's negation has more than {limit} terms; "
                "write it with fewer nested `any` blocks"
            )
    return tuple(out)
