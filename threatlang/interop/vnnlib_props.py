"""`require outputs { ... }` ⇄ VNN-LIB's unsafe output set.

VNN-LIB states where a counterexample would be (an `or` of `and`s of `sum c*Y <= rhs`); the
language states what must hold. One is the negation of the other. Export writes strict
negations (`>`) as `<=`, which only enlarges the unsafe set: an `unsat` answer for the file
still proves the spec's property.
"""

from __future__ import annotations

from ..errors import UsageError
from ..ir.properties import (
    Conjunction,
    Disjunction,
    Formula,
    LinearConstraint,
    OutputsSatisfy,
    Relation,
    violations,
)
from .vnnlib import Linear

#: the most `and` terms an exported unsafe set may have (negation multiplies `any`s out)
MAX_TERMS = 4096


def unsafe_of(prop: OutputsSatisfy) -> tuple[tuple[Linear, ...], ...]:
    """The VNN-LIB unsafe set of `prop`: where some term's constraints all hold, it fails."""
    try:
        terms = violations(prop.formula, MAX_TERMS)
    except ValueError as err:
        raise UsageError(f"VNN-LIB export: {err}.") from None
    return tuple(tuple(_as_le(c) for c in term) for term in terms)


def _as_le(c: LinearConstraint) -> Linear:
    sign = 1.0 if c.op in (Relation.LE, Relation.LT) else -1.0
    terms = tuple((j, sign * v) for j, v in enumerate(c.coeffs) if v != 0)
    return Linear(terms, sign * c.rhs + 0.0)


def safe_formula(unsafe: tuple[tuple[Linear, ...], ...]) -> Formula:
    """What must hold for `unsafe` to be empty: every term has a constraint that fails."""
    parts: list[Formula] = []
    for term in unsafe:
        if not term:
            raise UsageError(
                "VNN-LIB: an unsafe term without constraints makes every input unsafe."
            )
        atoms = [_negate(t) for t in term]
        parts.append(atoms[0] if len(atoms) == 1 else Disjunction(tuple(atoms)))
    if not parts:
        raise UsageError("VNN-LIB: the property has no output constraint.")
    return parts[0] if len(parts) == 1 else Conjunction(tuple(parts))


def _negate(t: Linear) -> LinearConstraint:
    """not (c.y <= rhs) is c.y > rhs, written with a positive leading coefficient."""
    if not t.terms:
        raise UsageError("VNN-LIB: an output constraint involves no output.")
    n = max(j for j, _ in t.terms) + 1
    coeffs = [0.0] * n
    for j, c in t.terms:
        coeffs[j] += c
    if next(c for c in coeffs if c != 0) < 0:
        return LinearConstraint(tuple(-c for c in coeffs), Relation.LT, -t.rhs + 0.0)
    return LinearConstraint(tuple(coeffs), Relation.GT, t.rhs)


def outputs_text(formula: Formula, indent: str = "  ") -> str:
    """`require outputs { ... }` for `formula`, in the surface syntax (parses back equal)."""
    top = formula.parts if isinstance(formula, Conjunction) else (formula,)
    body = "".join(_lines(p, indent + "  ") for p in top)
    return f"require outputs {{\n{body}{indent}}}"


def _lines(formula: Formula, indent: str) -> str:
    if isinstance(formula, LinearConstraint):
        return f'{indent}linear "{formula.text()}"\n'
    word = "any" if isinstance(formula, Disjunction) else "all"
    inner = "".join(_lines(p, indent + "  ") for p in formula.parts)
    return f"{indent}{word} {{\n{inner}{indent}}}\n"


__all__ = ["MAX_TERMS", "outputs_text", "safe_formula", "unsafe_of"]
