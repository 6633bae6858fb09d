"""Lowering of `require outputs { ... }`: linear constraints over the outputs, in `all`/`any`.

    require outputs {              # every item holds (a conjunction)
      linear "y[0] <= 3.99"
      any {                        # at least one item holds
        linear "y[0] - y[1] <= 0"
        linear "2*y[2] >= y[3] + 0.5"
      }
    }

A constraint is a string so the uniform grammar stays untouched; it is parsed here with errors
pointing at the offending character (file:line:col), like every other error.
"""

from __future__ import annotations

import re

from ..ir.properties import Conjunction, Disjunction, LinearConstraint, OutputsSatisfy, Relation
from ..ir.span import Span
from ..syntax import Stmt, Str, describe
from .reader import BAD, Diagnostics, build

ITEMS = 'linear "y[0] - y[1] <= 0", any { ... } or all { ... }'
CONSTRAINT_USAGE = 'a linear constraint over the outputs, e.g. "y[0] - 2*y[1] <= 0.5"'

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)|(?P<out>y\s*\[\s*(?P<idx>\d+)\s*\])"
    r"|(?P<rel><=|>=|<|>|≤|≥)|(?P<op>[-+*]))"
)
_REL = {"<=": Relation.LE, "≤": Relation.LE, ">=": Relation.GE, "≥": Relation.GE}
_REL |= {"<": Relation.LT, ">": Relation.GT}


def lower_outputs(stmt: Stmt, diags: Diagnostics):
    """`require outputs { ... }` as an `OutputsSatisfy` node (or BAD after diagnostics)."""
    if stmt.block is None:
        return diags.error(
            stmt.value.span,
            "require outputs needs a block of constraints",
            'require outputs { linear "y[0] <= y[1]" }',
        )
    parts = _items(stmt.block, "require outputs", stmt.span, diags)
    if parts is BAD:
        return BAD
    formula = parts[0] if len(parts) == 1 else Conjunction(tuple(parts), span=stmt.span)
    return OutputsSatisfy(formula, span=stmt.span)


def _items(stmts: tuple[Stmt, ...], owner: str, span: Span, diags: Diagnostics):
    out = []
    for s in stmts:
        if s.key == "linear":
            if s.block is not None:
                diags.error(s.key_span, "linear takes a constraint string, not a block")
                out.append(BAD)
                continue
            out.append(parse_constraint(s.value, s.span, diags))
        elif s.key in ("any", "all"):
            if s.value is not None:
                diags.error(s.value.span, f"{s.key} takes a block, not {describe(s.value)}")
            if s.block is None:
                out.append(diags.error(s.key_span, f"{s.key} needs a block {{ ... }}", ITEMS))
                continue
            parts = _items(s.block, s.key, s.span, diags)
            cls = Disjunction if s.key == "any" else Conjunction
            out.append(BAD if parts is BAD else cls(tuple(parts), span=s.span))
        else:
            out.append(diags.error(s.key_span, f"unknown item '{s.key}' in {owner}", ITEMS))
    if not stmts:
        return diags.error(span, f"{owner} needs at least one constraint", ITEMS)
    return BAD if any(p is BAD for p in out) else out


def parse_constraint(v, span: Span, diags: Diagnostics):
    """A constraint string as a `LinearConstraint`; errors point into the string."""
    if not isinstance(v, Str):
        where = v.span if v is not None else span
        return diags.error(where, f"linear expects a quoted constraint, got {describe(v)}")
    text = v.text

    def at(offset: int) -> Span:
        s = v.span
        col = s.column + 1 + offset  # +1: the opening quote
        return Span(s.file, s.line, col, s.line, col + 1)

    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            if text[pos:].strip() == "":
                break
            bad = pos + len(text[pos:]) - len(text[pos:].lstrip())
            return diags.error(
                at(bad),
                f"unexpected {text[bad]!r} in a constraint",
                "outputs y[0], y[1], ..., numbers, + - *, and one of <= < >= >",
            )
        kind = m.lastgroup if m.lastgroup != "idx" else "out"
        start = m.start(kind)
        tokens.append((kind, m.group(kind), start, m.group("idx")))
        pos = m.end()
    rels = [t for t in tokens if t[0] == "rel"]
    if len(rels) != 1:
        where = at(rels[1][2]) if len(rels) > 1 else v.span
        what = "one comparison per constraint" if rels else "a constraint needs a comparison"
        return diags.error(where, what, CONSTRAINT_USAGE)
    split = tokens.index(rels[0])
    left = _side(tokens[:split], at, rels[0][2], diags)
    right = _side(tokens[split + 1 :], at, len(text), diags)
    if left is BAD or right is BAD:
        return BAD
    (lc, lk), (rc, rk) = left, right
    n = max([*lc, *rc], default=-1) + 1
    coeffs = [lc.get(j, 0.0) - rc.get(j, 0.0) for j in range(n)]
    if not any(coeffs):
        return diags.error(v.span, "the constraint involves no output", CONSTRAINT_USAGE)
    return build(
        diags,
        LinearConstraint,
        span,
        {},
        coeffs=tuple(coeffs),
        op=_REL[rels[0][1]],
        rhs=rk - lk,
    )


def _side(tokens, at, end: int, diags: Diagnostics):
    """A sum of terms `[+-] [number [*]] y[i]` or `[+-] number`: ({index: coeff}, constant)."""
    coeffs: dict[int, float] = {}
    const = 0.0
    i = 0
    if not tokens:
        return diags.error(at(end), "a side of the comparison is empty", CONSTRAINT_USAGE)
    while i < len(tokens):
        sign = 1.0
        while i < len(tokens) and tokens[i][0] == "op" and tokens[i][1] in "+-":
            sign = -sign if tokens[i][1] == "-" else sign
            i += 1
        if i >= len(tokens):
            return diags.error(at(end), "a term is missing after the sign", CONSTRAINT_USAGE)
        kind, text, pos, idx = tokens[i]
        if kind == "num":
            value = float(text)
            i += 1
            if i < len(tokens) and tokens[i][1] == "*":
                i += 1
            if i < len(tokens) and tokens[i][0] == "out":
                j = int(tokens[i][3])
                coeffs[j] = coeffs.get(j, 0.0) + sign * value
                i += 1
            else:
                const += sign * value
        elif kind == "out":
            j = int(idx)
            coeffs[j] = coeffs.get(j, 0.0) + sign
            i += 1
        else:
            return diags.error(at(pos), f"unexpected {text!r}", CONSTRAINT_USAGE)
        if i < len(tokens) and not (tokens[i][0] == "op" and tokens[i][1] in "+-"):
            kind, text, pos, _ = tokens[i]
            what = "products of outputs are not linear" if kind == "out" else f"unexpected {text!r}"
            return diags.error(at(pos), what, CONSTRAINT_USAGE)
    return coeffs, const


__all__ = ["lower_outputs", "parse_constraint"]
