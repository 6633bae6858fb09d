"""Our own VNN-LIB reader (1.0 and 2.0 text): asserts become a union of input boxes and an
unsafe output set; what is not a box is refused with the reason."""

from __future__ import annotations

import re

import numpy as np

from ..errors import UsageError
from .vnnlib import Box, Linear, Query

#: deepest nesting of parentheses we read (real properties nest a handful of levels; the
#: recursive evaluation below would otherwise exhaust Python's stack on hostile input)
MAX_DEPTH = 200
_TOKEN = re.compile(r";[^\n]*|\(|\)|<\d[\d.]*>|[^\s()\[]+\[[^\]]*\]|[^\s()]+")


def _sexprs(text: str):
    stack: list[list] = [[]]
    for tok in _TOKEN.findall(text):
        if tok.startswith(";"):
            continue
        if tok == "(":
            stack.append([])
            if len(stack) > MAX_DEPTH + 1:
                raise UsageError(
                    f"VNN-LIB text nests parentheses deeper than {MAX_DEPTH} levels; "
                    "no property needs that (is the file generated correctly?)."
                )
        elif tok == ")":
            if len(stack) == 1:
                raise UsageError("VNN-LIB text has an unmatched ')'.")
            done = stack.pop()
            stack[-1].append(done)
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise UsageError("VNN-LIB text ends inside an unclosed '('.")
    return stack[0]


class _Vars:
    """Names of input (X) and output (Y) variables, mapped to flat indices."""

    def __init__(self):
        self.inputs: dict[str, int] = {}
        self.outputs: dict[str, int] = {}
        self.input_shape: tuple[int, ...] | None = None
        self.tensors: dict[str, tuple[str, tuple[int, ...]]] = {}

    def lookup(self, tok: str) -> tuple[str, int] | None:
        if tok in self.inputs:
            return "X", self.inputs[tok]
        if tok in self.outputs:
            return "Y", self.outputs[tok]
        m = re.fullmatch(r"([^\s\[]+)\[([^\]]*)\]", tok)
        if m and m.group(1) in self.tensors:
            kind, shape = self.tensors[m.group(1)]
            idx = tuple(int(k) for k in m.group(2).split(",") if k.strip())
            return kind, int(np.ravel_multi_index(idx, shape)) if shape else 0
        return None


def _linear(expr, vars_: _Vars) -> tuple[dict[tuple[str, int], float], float]:
    """A linear expression as ({(kind, index): coeff}, constant)."""
    if isinstance(expr, str):
        if expr[0] in "0123456789.+-":
            return {}, float(expr)
        ref = vars_.lookup(expr)
        if ref is not None:
            return {ref: 1.0}, 0.0
        try:
            return {}, float(expr)
        except ValueError:
            raise UsageError(f"VNN-LIB: unknown name {expr!r}.") from None
    op, *args = expr
    parts = [_linear(a, vars_) for a in args]
    if op == "+" or (op == "-" and len(parts) > 1):
        coeffs, const = dict(parts[0][0]), parts[0][1]
        sign = 1.0 if op == "+" else -1.0
        for c, k in parts[1:]:
            for v, w in c.items():
                coeffs[v] = coeffs.get(v, 0.0) + sign * w
            const += sign * k
        return coeffs, const
    if op == "-":
        return {v: -w for v, w in parts[0][0].items()}, -parts[0][1]
    if op == "*":
        scalars = [k for c, k in parts if not c]
        linear = [(c, k) for c, k in parts if c]
        if len(linear) > 1:
            raise UsageError("VNN-LIB: products of variables are not linear.")
        factor = float(np.prod(scalars)) if scalars else 1.0
        c, k = linear[0] if linear else ({}, 1.0)
        return {v: factor * w for v, w in c.items()}, factor * k
    raise UsageError(f"VNN-LIB: unsupported operator {op!r}.")


def _dnf(expr, vars_: _Vars) -> list[list[tuple[dict, float]]]:
    """`expr` as a disjunction of conjunctions of `sum(coeff * var) <= rhs` atoms."""
    op, *args = expr
    if op == "and":
        parts = [_dnf(a, vars_) for a in args]
        if all(len(p) == 1 for p in parts):  # a plain conjunction (a box): one pass, no copies
            return [[atom for p in parts for atom in p[0]]]
        out: list[list] = [[]]
        for p in parts:
            out = [x + y for x in out for y in p]
        return out
    if op == "or":
        return [term for a in args for term in _dnf(a, vars_)]
    if op in ("<=", "<", ">=", ">"):
        (lc, lk), (rc, rk) = (_linear(a, vars_) for a in args)
        if op in (">=", ">"):
            (lc, lk), (rc, rk) = (rc, rk), (lc, lk)
        coeffs = dict(lc)
        for v, w in rc.items():
            coeffs[v] = coeffs.get(v, 0.0) - w
        return [[({v: w for v, w in coeffs.items() if w != 0}, rk - lk)]]
    raise UsageError(f"VNN-LIB: unsupported connective {op!r}.")


def _box_of(term, n: int) -> Box:
    lo, hi = np.full(n, -np.inf), np.full(n, np.inf)
    for coeffs, rhs in term:
        if len(coeffs) != 1:
            raise UsageError("VNN-LIB: the input constraints are not a box (a linear constraint).")
        (((_, i), c),) = coeffs.items()
        if c > 0:
            hi[i] = min(hi[i], rhs / c)
        else:
            lo[i] = max(lo[i], rhs / c)
    return Box(lo, hi)


def read(text: str, input_shape: tuple[int, ...] | None = None) -> Query:
    """A `Query` from VNN-LIB 1.0 (VNN-COMP) or 2.0 text. Inputs must form boxes or a union
    of boxes; anything else is a `UsageError` saying why."""
    vars_ = _Vars()
    asserts = []
    for cmd in _sexprs(text):
        if not isinstance(cmd, list) or not cmd:
            raise UsageError(f"VNN-LIB: expected a command, got {cmd!r}.")
        head = cmd[0]
        if head == "declare-const":
            name = cmd[1]
            if name.startswith("X_"):
                vars_.inputs[name] = int(name[2:])
            elif name.startswith("Y_"):
                vars_.outputs[name] = int(name[2:])
            else:
                raise UsageError(f"VNN-LIB: {name} is neither an input X_i nor an output Y_j.")
        elif head == "declare-network":
            for decl in cmd[2:]:
                dims = tuple(int(d) for d in re.findall(r"\d+", " ".join(decl[3:])))
                kind = {"declare-input": "X", "declare-output": "Y"}.get(decl[0])
                if kind is None:
                    raise UsageError(f"VNN-LIB: {decl[0]} (hidden nodes) is not supported.")
                vars_.tensors[decl[1]] = (kind, dims)
        elif head == "assert":
            asserts.extend(_conjuncts(cmd[1]))
        elif head != "vnnlib-version":
            raise UsageError(f"VNN-LIB: unsupported command {head!r}.")
    if vars_.tensors:
        shapes = {k: s for k, s in vars_.tensors.values()}
        n_in, n_out = int(np.prod(shapes["X"])), int(np.prod(shapes["Y"]))
        shape = tuple(shapes["X"][1:]) if shapes["X"][:1] == (1,) else tuple(shapes["X"])
    else:
        n_in, n_out = len(vars_.inputs), len(vars_.outputs)
        shape = (n_in,)
    if input_shape is not None:
        if int(np.prod(input_shape)) != n_in:
            raise UsageError(f"VNN-LIB: {n_in} inputs do not fit the model's input {input_shape}.")
        shape = tuple(input_shape)
    in_terms: list[list] = [[]]
    out_terms: list[list] = [[]]
    for expr in asserts:
        terms = _dnf(expr, vars_)
        kinds = {k for term in terms for coeffs, _ in term for (k, _) in coeffs}
        if kinds == {"X", "Y"}:
            ins = [[a for a in t if _kind(a) == "X"] for t in terms]
            outs = [[a for a in t if _kind(a) == "Y"] for t in terms]
            if len(terms) > 1 and not _separable(ins, outs):
                raise UsageError(
                    "VNN-LIB: constraints mixing inputs and outputs are not supported."
                )
            in_terms = [x + y for x in in_terms for y in _unique(ins)]
            out_terms = [x + y for x in out_terms for y in _unique(outs)]
        elif kinds == {"Y"}:
            out_terms = [x + y for x in out_terms for y in terms]
        else:
            in_terms = [x + y for x in in_terms for y in terms]
    boxes = tuple(_box_of(t, n_in) for t in in_terms)
    unsafe = tuple(
        tuple(
            Linear(tuple(sorted((i, c) for (_, i), c in coeffs.items())), rhs)
            for coeffs, rhs in term
        )
        for term in out_terms
    )
    return Query(shape, n_out, boxes, unsafe)


def _conjuncts(expr) -> list:
    """A top-level (and A B ...) as separate assertions (keeps the DNF of each small)."""
    if isinstance(expr, list) and expr and expr[0] == "and":
        return [c for a in expr[1:] for c in _conjuncts(a)]
    return [expr]


def _kind(atom) -> str:
    return next(iter(atom[0]))[0]


def _unique(terms):
    out = []
    for t in terms:
        if t not in out:
            out.append(t)
    return out


def _separable(ins, outs) -> bool:
    """(or (and A_i B_j) ...) over every pair i, j: the disjunction factors into (or A)(or B)."""
    pairs = {(repr(a), repr(b)) for a, b in zip(ins, outs, strict=True)}
    return len(pairs) == len(_unique(ins)) * len(_unique(outs))
