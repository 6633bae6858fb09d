"""Our own VNN-LIB reader (1.0 and 2.0 text): asserts become a union of input boxes and an
unsafe output set; what is not a box is refused with the reason.

Built to read hostile files: time is linear in the text (bounds are narrowed in place, never
by copying a growing list), and every limit below is a `UsageError` naming it, never a hang,
a `MemoryError` or a traceback. The limits (far above any VNN-COMP property):

- `MAX_DEPTH` levels of parentheses;
- `MAX_TERMS` boxes in the input union and terms in the unsafe output set, *after* the
  disjunctions of the file are multiplied out (40 asserts `(or a b)` would be 2^40 boxes);
- `MAX_INPUTS` inputs, and `MAX_BOX_VALUES` bounds over all boxes (boxes x inputs).
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..errors import UsageError
from .vnnlib import Box, Linear, Query

#: deepest nesting of parentheses we read (real properties nest a handful of levels; the
#: recursive evaluation below would otherwise exhaust Python's stack on hostile input)
MAX_DEPTH = 200
#: most input boxes, and most unsafe-set terms, once disjunctions are multiplied out
MAX_TERMS = 10_000
#: most declared inputs (ImageNet's 3x224x224 is 150,528)
MAX_INPUTS = 1 << 24
#: most bounds over all boxes together (each a float64 lower and upper value)
MAX_BOX_VALUES = 1 << 25

_TOKEN = re.compile(r";[^\n]*|\(|\)|<\d[\d.]*>|[^\s()\[]+\[[^\]]*\]|[^\s()]+")
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,4})?")
_CONST = re.compile(r"([XY])_(\d{1,9})")
_INDEXED = re.compile(r"([^\s\[\]]+)\[([^\]]*)\]")
_COMPARE = ("<=", "<", ">=", ">", "=")
_PRINTABLE = re.compile(r"[\w.+\-*/<>=\[\](), …]*", re.ASCII)

# An atom is `sum(c * var) <= rhs`: ((((kind, index), c), ...) sorted, rhs); hashable.
Atom = tuple[tuple[tuple[tuple[str, int], float], ...], float]
Term = tuple[Atom, ...]  # a conjunction of atoms


def _show(value, limit: int = 40) -> str:
    """A token or expression for an error message, clipped (files can be megabytes), and only
    when it is made of VNN-LIB characters: a message must not quote what another kind of file
    holds (the first line of /etc/passwd, a key)."""
    text = value if isinstance(value, str) else _unparse(value, limit)
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    if not _PRINTABLE.fullmatch(text):
        return "a token that is not VNN-LIB (not shown)"
    return repr(text)


def _unparse(expr, limit: int) -> str:
    if isinstance(expr, str):
        return expr
    out = "("
    for e in expr:
        out += ("" if out == "(" else " ") + _unparse(e, limit)
        if len(out) > limit:
            return out
    return out + ")"


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
        self.consts: dict[str, dict[str, int]] = {"X": {}, "Y": {}}
        self.tensors: dict[str, tuple[str, tuple[int, ...]]] = {}

    def declare_const(self, cmd: list) -> None:
        if len(cmd) != 3 or not all(isinstance(c, str) for c in cmd[1:]):
            raise UsageError(
                f"VNN-LIB: {_show(cmd)} is not a declaration; write (declare-const X_0 Real)."
            )
        name = cmd[1]
        m = _CONST.fullmatch(name)
        if m is None:
            raise UsageError(
                f"VNN-LIB: {_show(name)} is neither an input X_i nor an output Y_j "
                "(i and j whole numbers)."
            )
        table = self.consts[m.group(1)]
        if name in table:
            raise UsageError(f"VNN-LIB: {name} is declared twice.")
        table[name] = int(m.group(2))

    def declare_network(self, cmd: list) -> None:
        if self.tensors:
            raise UsageError("VNN-LIB: only one declared network is supported.")
        for decl in cmd[2:]:
            if not isinstance(decl, list) or len(decl) < 4 or not isinstance(decl[0], str):
                raise UsageError(
                    f"VNN-LIB: {_show(decl)} is not a declaration; write "
                    "(declare-input X Real [1, 5])."
                )
            kind = {"declare-input": "X", "declare-output": "Y"}.get(decl[0])
            if kind is None:
                raise UsageError(
                    f"VNN-LIB: {_show(decl[0])} (hidden nodes and the like) is not supported."
                )
            if not isinstance(decl[1], str) or any(k == kind for k, _ in self.tensors.values()):
                raise UsageError(
                    "VNN-LIB: a network needs one named input and one named output tensor."
                )
            self.tensors[decl[1]] = (kind, _dims(decl[3:]))

    def sizes(self) -> tuple[int, int, tuple[int, ...]]:
        """(inputs, outputs, input shape), checked: each kind declared, indices 0..n-1."""
        if self.tensors:
            if any(self.consts.values()):
                raise UsageError("VNN-LIB: the file mixes X_i constants with a declared network.")
            shapes = {kind: shape for kind, shape in self.tensors.values()}
            if set(shapes) != {"X", "Y"}:
                raise UsageError("VNN-LIB: the network declares no input or no output tensor.")
            n_in, n_out = (math.prod(shapes[k]) for k in ("X", "Y"))
            x = shapes["X"]
            shape = tuple(x[1:]) if len(x) > 1 and x[0] == 1 else tuple(x)
        else:
            n_in, n_out = (self._count(k) for k in ("X", "Y"))
            shape = (n_in,)
        if n_in > MAX_INPUTS or n_out > MAX_INPUTS:
            raise UsageError(
                f"VNN-LIB: the file declares {max(n_in, n_out):,} variables; this reader takes "
                f"at most {MAX_INPUTS:,} inputs or outputs."
            )
        return n_in, n_out, shape

    def _count(self, kind: str) -> int:
        indices = sorted(self.consts[kind].values())
        what = "input X_i" if kind == "X" else "output Y_j"
        if not indices:
            raise UsageError(f"VNN-LIB: the file declares no {what}.")
        n = len(indices)
        if indices[-1] != n - 1:
            raise UsageError(
                f"VNN-LIB: {kind}_{indices[-1]} is declared, but there are only {n} "
                f"{what[:-4]}s; number them {kind}_0 .. {kind}_{n - 1}."
            )
        return n

    def lookup(self, tok: str) -> tuple[str, int] | None:
        for kind in ("X", "Y"):
            if tok in self.consts[kind]:
                return kind, self.consts[kind][tok]
        m = _INDEXED.fullmatch(tok)
        if m is None or m.group(1) not in self.tensors:
            return None
        kind, shape = self.tensors[m.group(1)]
        parts = [p.strip() for p in m.group(2).split(",")]
        if len(parts) != len(shape) or not all(p.isdigit() and len(p) < 10 for p in parts):
            raise UsageError(
                f"VNN-LIB: {_show(tok)} needs {len(shape)} whole-number indices "
                f"for a tensor of shape {list(shape)}."
            )
        flat = 0
        for p, d in zip(parts, shape, strict=True):
            if int(p) >= d:
                raise UsageError(f"VNN-LIB: {_show(tok)} is outside its shape {list(shape)}.")
            flat = flat * d + int(p)
        return kind, flat


def _dims(tokens: list) -> tuple[int, ...]:
    """`[1, 784]` as written after a tensor's type (tokenised as '[1,' and '784]')."""
    if not all(isinstance(t, str) for t in tokens):
        raise UsageError("VNN-LIB: a tensor's shape is a list of sizes, e.g. [1, 784].")
    text = " ".join(tokens).strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise UsageError(f"VNN-LIB: {_show(text)} is not a tensor shape such as [1, 784].")
    parts = [p.strip() for p in text[1:-1].split(",")]
    if not all(p.isdigit() and len(p) < 10 and int(p) > 0 for p in parts):
        raise UsageError(f"VNN-LIB: the shape {_show(text)} needs positive whole-number sizes.")
    return tuple(int(p) for p in parts)


def _linear(expr, vars_: _Vars) -> tuple[dict[tuple[str, int], float], float]:
    """A linear expression as ({(kind, index): coeff}, constant)."""
    if isinstance(expr, str):
        if _NUMBER.fullmatch(expr):
            value = float(expr)
            if not math.isfinite(value):
                raise UsageError(f"VNN-LIB: the number {_show(expr)} is too large.")
            return {}, value
        ref = vars_.lookup(expr)
        if ref is None:
            raise UsageError(f"VNN-LIB: {_show(expr)} is neither a number nor a declared variable.")
        return {ref: 1.0}, 0.0
    if not expr or not isinstance(expr[0], str) or expr[0] not in ("+", "-", "*"):
        raise UsageError(
            f"VNN-LIB: {_show(expr)} is not a linear expression (+, -, * of numbers and variables)."
        )
    op, args = expr[0], expr[1:]
    if not args:
        raise UsageError(f"VNN-LIB: ({op}) needs at least one argument.")
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
    scalars = [k for c, k in parts if not c]
    linear = [(c, k) for c, k in parts if c]
    if len(linear) > 1:
        raise UsageError("VNN-LIB: products of variables are not linear.")
    factor = math.prod(scalars)
    c, k = linear[0] if linear else ({}, 1.0)
    return {v: factor * w for v, w in c.items()}, factor * k


def _atom(left, right, vars_: _Vars) -> Atom:
    """`left <= right` as an atom."""
    (lc, lk), (rc, rk) = _linear(left, vars_), _linear(right, vars_)
    coeffs = dict(lc)
    for v, w in rc.items():
        coeffs[v] = coeffs.get(v, 0.0) - w
    rhs = rk - lk
    kept = tuple(sorted((v, w) for v, w in coeffs.items() if w != 0))
    if not (math.isfinite(rhs) and all(math.isfinite(w) for _, w in kept)):
        raise UsageError("VNN-LIB: a constraint's numbers overflow a float.")
    if len({kind for (kind, _), _ in kept}) > 1:
        raise UsageError("VNN-LIB: a constraint relating inputs to outputs is not supported.")
    return kept, rhs


def _dnf(expr, vars_: _Vars) -> list[Term]:
    """`expr` as a disjunction of conjunctions of atoms; refuses past `MAX_TERMS` terms."""
    if not isinstance(expr, list) or not expr or not isinstance(expr[0], str):
        raise UsageError(f"VNN-LIB: {_show(expr)} is not a constraint such as (<= X_0 1).")
    op, args = expr[0], expr[1:]
    if op in ("and", "or") and not args:
        raise UsageError(f"VNN-LIB: ({op}) needs at least one argument.")
    if op == "and":
        common: list[Atom] = []
        out: list[Term] = [()]
        for a in args:
            p = _dnf(a, vars_)
            if len(p) == 1:  # a plain conjunct: gathered once, not copied into every term
                common.extend(p[0])
                continue
            _limit(len(out) * len(p))
            out = [x + y for x in out for y in p]
        head = tuple(common)
        return [head + t for t in out]
    if op == "or":
        terms = [t for a in args for t in _dnf(a, vars_)]
        _limit(len(terms))
        return terms
    if op in _COMPARE:
        if len(args) != 2:
            raise UsageError(f"VNN-LIB: ({op} ...) compares two expressions; got {len(args)}.")
        a, b = args if op in ("<=", "<", "=") else args[::-1]
        atoms = [_atom(a, b, vars_)] + ([_atom(b, a, vars_)] if op == "=" else [])
        kept = tuple(t for t in atoms if t[0])  # constants compared: drop if true
        if any(not t[0] and t[1] < 0 for t in atoms):
            return []  # a false constant comparison: no term satisfies it
        return [kept]
    raise UsageError(f"VNN-LIB: unsupported connective or operator {_show(op)}.")


def _limit(terms: int) -> None:
    if terms > MAX_TERMS:
        raise UsageError(
            f"VNN-LIB: the disjunctions multiply out to more than {MAX_TERMS:,} cases; this "
            "reader refuses past that limit (split the property into several files)."
        )


class _Sets:
    """The input region and unsafe output set, built assert by assert in linear time: box
    bounds common to all cases narrow two arrays in place; disjunctions are kept apart and
    multiplied out once, at the end, under `MAX_TERMS`."""

    def __init__(self, n_in: int, names):
        self.n_in, self.names = n_in, names
        self.lo, self.hi = np.full(n_in, -np.inf), np.full(n_in, np.inf)
        self.in_cases: list[list[Term]] = []
        self.out_common: list[Atom] = []
        self.out_cases: list[list[Term]] = []

    def add(self, terms: list[Term]) -> None:
        if not terms:
            raise UsageError("VNN-LIB: an assertion can never hold, so the query is empty.")
        kinds = {kind for t in terms for coeffs, _ in t for (kind, _), _ in coeffs}
        if kinds == {"X", "Y"}:
            pairs = dict.fromkeys(_halves(t) for t in terms)
            ins = list(dict.fromkeys(x for x, _ in pairs))
            outs = list(dict.fromkeys(y for _, y in pairs))
            if len(pairs) != len(ins) * len(outs):  # not (or A_i)(or B_j): a real coupling
                raise UsageError(
                    "VNN-LIB: constraints mixing inputs and outputs are not supported."
                )
            self._add_inputs(ins)
            self._add_outputs(outs)
        elif kinds == {"Y"}:
            self._add_outputs(terms)
        elif kinds == {"X"}:
            self._add_inputs(terms)
        # else: constant comparisons that hold

    def _add_inputs(self, terms: list[Term]) -> None:
        for t in terms:
            for coeffs, _ in t:
                if len(coeffs) != 1:
                    raise UsageError(
                        "VNN-LIB: the input constraints are not a box (a linear constraint)."
                    )
        if len(terms) == 1:
            _narrow(self.lo, self.hi, terms[0])
        else:
            self.in_cases.append(terms)

    def _add_outputs(self, terms: list[Term]) -> None:
        if len(terms) == 1:
            self.out_common.extend(terms[0])
        else:
            self.out_cases.append(terms)

    def boxes(self) -> tuple[Box, ...]:
        count = _product(len(c) for c in self.in_cases)
        if count * self.n_in > MAX_BOX_VALUES:
            raise UsageError(
                f"VNN-LIB: {count:,} input boxes of {self.n_in:,} inputs exceed this reader's "
                f"limit of {MAX_BOX_VALUES:,} bounds."
            )
        out, empty = [], None
        for choice in _choices(self.in_cases):
            lo, hi = self.lo.copy(), self.hi.copy()
            for term in choice:
                _narrow(lo, hi, term)
            bad = np.flatnonzero(lo > hi)
            if len(bad):  # this case of the disjunctions is empty: not part of the union
                empty = empty or (int(bad[0]), float(lo[bad[0]]), float(hi[bad[0]]))
                continue
            out.append(Box(lo, hi))
        if not out:
            i, low, high = empty
            raise UsageError(
                f"VNN-LIB: input {self.names(i)} has lower bound {low!r} above its upper "
                f"bound {high!r}; the input box is empty."
            )
        return tuple(out)

    def unsafe(self) -> tuple[tuple[Linear, ...], ...]:
        _product(len(c) for c in self.out_cases)
        return tuple(
            tuple(
                Linear(tuple((i, c) for (_, i), c in coeffs), rhs)
                for coeffs, rhs in (*self.out_common, *(a for t in choice for a in t))
            )
            for choice in _choices(self.out_cases)
        )


def _narrow(lo: np.ndarray, hi: np.ndarray, term: Term) -> None:
    for (((_, i), c),), rhs in term:
        if c > 0:
            hi[i] = min(hi[i], rhs / c)
        else:
            lo[i] = max(lo[i], rhs / c)


def _product(sizes) -> int:
    n = 1
    for s in sizes:
        n *= s
        _limit(n)
    return n


def _choices(cases: list[list[Term]]):
    """Every way of picking one term from each disjunction (one empty pick when none)."""
    out: list[tuple[Term, ...]] = [()]
    for terms in cases:
        out = [x + (t,) for x in out for t in terms]
    return out


def _kind(atom: Atom) -> str:
    return atom[0][0][0][0]


def _halves(term: Term) -> tuple[Term, Term]:
    """(input atoms, output atoms) of a term."""
    return tuple(a for a in term if _kind(a) == "X"), tuple(a for a in term if _kind(a) == "Y")


def read(text: str, input_shape: tuple[int, ...] | None = None) -> Query:
    """A `Query` from VNN-LIB 1.0 (VNN-COMP) or 2.0 text. Inputs must form boxes or a union
    of boxes; anything else (or anything past the module's limits) is a `UsageError` saying
    why."""
    vars_ = _Vars()
    asserts = []
    for cmd in _sexprs(text):
        if not isinstance(cmd, list) or not cmd or not isinstance(cmd[0], str):
            raise UsageError(f"VNN-LIB: expected a command such as (assert ...), got {_show(cmd)}.")
        head = cmd[0]
        if head == "declare-const":
            vars_.declare_const(cmd)
        elif head == "declare-network":
            vars_.declare_network(cmd)
        elif head == "assert":
            if len(cmd) != 2:
                raise UsageError(
                    f"VNN-LIB: (assert ...) takes one formula; this one has {len(cmd) - 1}."
                )
            asserts.extend(_conjuncts(cmd[1]))
        elif head != "vnnlib-version":
            raise UsageError(f"VNN-LIB: unsupported command {_show(head)}.")
    n_in, n_out, shape = vars_.sizes()
    if input_shape is not None:
        if math.prod(input_shape) != n_in:
            raise UsageError(
                f"VNN-LIB: {n_in} inputs do not fit the model's input {tuple(input_shape)}."
            )
        shape = tuple(input_shape)
    sets = _Sets(n_in, (lambda i: f"X_{i}") if not vars_.tensors else str)
    for expr in asserts:
        sets.add(_dnf(expr, vars_))
    return Query(shape, n_out, sets.boxes(), sets.unsafe())


def _conjuncts(expr) -> list:
    """A top-level (and A B ...) as separate assertions (keeps the DNF of each small)."""
    out, stack = [], [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, list) and len(e) > 1 and e[0] == "and":
            stack.extend(reversed(e[1:]))
        else:
            out.append(e)
    return out
