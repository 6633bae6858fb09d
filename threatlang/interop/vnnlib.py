"""VNN-LIB properties: a disjunction of input boxes and an unsafe output set, written in the
VNN-COMP dialect (VNN-LIB 1.0: `X_i`/`Y_j` constants) or in VNN-LIB 2.0 (a declared network,
indexed tensors; what the PyPI `vnnlib` package parses), and read back from either.

A query states where a counterexample would be: some input in one of the boxes whose output
lies in the unsafe set. A verifier answering `unsat` proves the property.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import attrs
import numpy as np

from ..errors import UsageError


def _flat(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).ravel() + 0.0  # + 0.0 turns -0.0 into 0.0


@attrs.frozen(eq=False)
class Box:
    """Elementwise bounds `lo <= x <= hi` on the flattened input."""

    lo: np.ndarray = attrs.field(converter=_flat)
    hi: np.ndarray = attrs.field(converter=_flat)

    def same(self, other: Box) -> bool:
        return np.array_equal(self.lo, other.lo) and np.array_equal(self.hi, other.hi)


@attrs.frozen
class Linear:
    """`sum(c * Y[i] for i, c in terms) <= rhs`."""

    terms: tuple[tuple[int, float], ...]
    rhs: float


@attrs.frozen(eq=False)
class Query:
    input_shape: tuple[int, ...]
    num_outputs: int
    boxes: tuple[Box, ...]  # the input lies in one of these
    unsafe: tuple[tuple[Linear, ...], ...]  # a counterexample's output meets one of these


def label_unsafe(label: int, num_outputs: int) -> tuple[tuple[Linear, ...], ...]:
    """Unsafe for `label_unchanged`: some other logit reaches the true one (Y_j >= Y_label)."""
    return tuple(
        (Linear(tuple(sorted(((label, 1.0), (j, -1.0)))), 0.0),)
        for j in range(num_outputs)
        if j != label
    )


def unsafe_label(query: Query) -> int | None:
    """The label whose `label_unchanged` property `query.unsafe` states, if it is one."""
    for label in range(query.num_outputs):
        want = label_unsafe(label, query.num_outputs)
        if set(want) == set(query.unsafe) and len(want) == len(query.unsafe):
            return label
    return None


# ----------------------------------------------------------------------------------- writing
def _num(v: float) -> str:
    return repr(float(v))


def _split(boxes: tuple[Box, ...]):
    """Coordinates bounded identically in every box (asserted once) and the rest."""
    lo = np.stack([b.lo for b in boxes])
    hi = np.stack([b.hi for b in boxes])
    common = np.all(lo == lo[0], axis=0) & np.all(hi == hi[0], axis=0)
    return np.flatnonzero(common), np.flatnonzero(~common)


def _lines(query: Query, var, out, bound) -> Iterator[str]:
    common, varying = _split(query.boxes)
    first = query.boxes[0]
    for i in common:
        yield f"(assert {bound(var(i), first.lo[i], first.hi[i])})"
    if len(varying):
        conj = [
            "(and " + " ".join(bound(var(i), b.lo[i], b.hi[i]) for i in varying) + ")"
            for b in query.boxes
        ]
        yield "(assert (or\n  " + "\n  ".join(conj) + "\n))"


def _term(out, t: Linear) -> str:
    """`t` as a comparison of outputs (Y_a >= Y_b for the usual margin constraint)."""
    if len(t.terms) == 2 and t.rhs == 0 and {c for _, c in t.terms} == {1.0, -1.0}:
        pos = next(i for i, c in t.terms if c == 1.0)
        neg = next(i for i, c in t.terms if c == -1.0)
        return f"(>= {out(neg)} {out(pos)})"
    lhs = " ".join(f"(* {_num(c)} {out(i)})" for i, c in t.terms)
    return f"(<= (+ {lhs}) {_num(t.rhs)})"


def _unsafe(query: Query, out) -> str:
    conj = ["(and " + " ".join(_term(out, t) for t in ts) + ")" for ts in query.unsafe]
    return "(or\n  " + "\n  ".join(conj) + "\n)"


def write_v1(query: Query, comment: str = "") -> str:
    """VNN-COMP text: `(declare-const X_i Real)`, one assert per bound or disjunction."""

    def bound(v, lo, hi):
        return f"(<= {v} {_num(hi)}) (>= {v} {_num(lo)})"

    def var(i):
        return f"X_{i}"

    def out(j):
        return f"Y_{j}"

    n = int(np.prod(query.input_shape))
    head = [f"; {line}" for line in comment.splitlines()]
    head += [f"(declare-const X_{i} Real)" for i in range(n)]
    head += [f"(declare-const Y_{j} Real)" for j in range(query.num_outputs)]
    body = []
    for line in _lines(query, var, out, bound):
        # a single bound pair outside a disjunction is two asserts in VNN-COMP files
        m = re.fullmatch(r"\(assert (\(<= \S+ \S+\)) (\(>= \S+ \S+\))\)", line)
        body += [f"(assert {m.group(1)})", f"(assert {m.group(2)})"] if m else [line]
    return "\n".join([*head, *body, f"(assert {_unsafe(query, out)})", ""])


def write_v2(query: Query, network: str = "net", comment: str = "") -> str:
    """VNN-LIB 2.0 text: one network, tensors indexed with the model's input shape (batch 1).

    Everything is one assertion, (and (or boxes) (or unsafe)), which is how the `vnnlib`
    package's reachability transform reads a disjunction of input boxes."""
    shape = (1, *query.input_shape)

    def var(i):
        idx = np.unravel_index(i, shape)
        return "X[" + ",".join(str(int(k)) for k in idx) + "]"

    def out(j):
        return f"Y[0,{j}]"

    def bound(v, lo, hi):
        return f"(<= {v} {_num(hi)}) (>= {v} {_num(lo)})"

    dims = ", ".join(str(d) for d in shape)
    boxes = [
        "(and " + " ".join(bound(var(i), b.lo[i], b.hi[i]) for i in range(len(b.lo))) + ")"
        for b in query.boxes
    ]
    head = [f"; {line}" for line in comment.splitlines()]
    head += [
        "(vnnlib-version <2.0>)",
        f"(declare-network {network}",
        f"  (declare-input X float32 [{dims}])",
        f"  (declare-output Y float32 [1, {query.num_outputs}])",
        ")",
    ]
    body = "(assert (and\n(or\n  " + "\n  ".join(boxes) + "\n)\n" + _unsafe(query, out) + "))"
    return "\n".join([*head, body, ""])


# ----------------------------------------------------------------------------------- reading
_TOKEN = re.compile(r";[^\n]*|\(|\)|<\d[\d.]*>|[^\s()\[]+\[[^\]]*\]|[^\s()]+")


def _sexprs(text: str):
    stack: list[list] = [[]]
    for tok in _TOKEN.findall(text):
        if tok.startswith(";"):
            continue
        if tok == "(":
            stack.append([])
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
        m = re.fullmatch(r"([^\s\[]+)\[([^\]]*)\]", tok)
        if m and m.group(1) in self.tensors:
            kind, shape = self.tensors[m.group(1)]
            idx = tuple(int(k) for k in m.group(2).split(",") if k.strip())
            return kind, int(np.ravel_multi_index(idx, shape)) if shape else 0
        if tok in self.inputs:
            return "X", self.inputs[tok]
        if tok in self.outputs:
            return "Y", self.outputs[tok]
        return None


def _linear(expr, vars_: _Vars) -> tuple[dict[tuple[str, int], float], float]:
    """A linear expression as ({(kind, index): coeff}, constant)."""
    if isinstance(expr, str):
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
        out: list[list] = [[]]
        for a in args:
            out = [x + y for x in out for y in _dnf(a, vars_)]
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
