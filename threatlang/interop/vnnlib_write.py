"""VNN-LIB text for a `Query`: the VNN-COMP dialect (1.0) and VNN-LIB 2.0."""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from .vnnlib import Box, Linear, Query


def _num(v: float) -> str:
    return repr(float(v) + 0.0)  # never "-0.0"


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
    if len(t.terms) == 1 and abs(t.terms[0][1]) == 1.0:
        (i, c), rhs = t.terms[0], t.rhs
        return f"(<= {out(i)} {_num(rhs)})" if c > 0 else f"(>= {out(i)} {_num(-rhs)})"
    lhs = " ".join(f"(* {_num(c)} {out(i)})" for i, c in t.terms)
    lhs = lhs if len(t.terms) == 1 else f"(+ {lhs})"
    return f"(<= {lhs} {_num(t.rhs)})"


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
