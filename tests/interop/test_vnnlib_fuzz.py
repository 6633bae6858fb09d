"""Fuzzing the VNN-LIB reader (issue 21): random s-expressions, random numbers, deep nesting
and raw text either read as a query whose boxes and unsafe terms are well formed, or raise a
`UsageError` — never another exception, never a hang (each example has a deadline)."""

from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from threatlang.errors import UsageError  # noqa: E402
from threatlang.interop.vnnlib import Query  # noqa: E402
from threatlang.interop.vnnlib_read import MAX_DEPTH, MAX_TERMS, read  # noqa: E402

WORDS = [
    "assert", "declare-const", "declare-network", "declare-input", "declare-output",
    "declare-hidden", "vnnlib-version", "and", "or", "not", "<=", ">=", "<", ">", "=", "+", "-",
    "*", "/", "Real", "X_0", "X_1", "X_2", "X_3", "X_9", "Y_0", "Y_1", "Y_2", "X_abc", "X[0,1]",
    "X[a,b]", "Y[0,0]", "X", "Y", "[1,", "3]", "[1, 4]", "<2.0>", "1.2.3", "-", ".", "e5",
]  # fmt: skip

numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["1e999", "-1e-999", "0.", ".5", "+3", "1e4000", "00", "nan", "inf"]),
)
tokens = st.one_of(st.sampled_from(WORDS), numbers, st.text(min_size=1, max_size=8))
sexprs = st.recursive(tokens, lambda inner: st.lists(inner, max_size=6), max_leaves=40)


def _text(expr) -> str:
    return expr if isinstance(expr, str) else "(" + " ".join(_text(e) for e in expr) + ")"


def _declarations(n_in: int, n_out: int) -> str:
    return "".join(f"(declare-const X_{i} Real)\n" for i in range(n_in)) + "".join(
        f"(declare-const Y_{j} Real)\n" for j in range(n_out)
    )


variables = st.sampled_from(["X_0", "X_1", "X_2", "Y_0", "Y_1"])  # declared below
finite = st.floats(-1e6, 1e6, allow_nan=False).map(repr)
terms = st.recursive(
    st.one_of(variables, finite),
    lambda inner: st.lists(inner, min_size=1, max_size=4).flatmap(
        lambda args: st.sampled_from(["+", "-", "*"]).map(lambda op: [op, *args])
    ),
    max_leaves=8,
)
atoms = st.tuples(st.sampled_from(["<=", ">=", "<", ">", "="]), terms, terms).map(list)
formulas = st.recursive(
    atoms,
    lambda inner: st.lists(inner, min_size=1, max_size=4).flatmap(
        lambda args: st.sampled_from(["and", "or"]).map(lambda op: [op, *args])
    ),
    max_leaves=12,
)


def _well_formed(q: Query) -> None:
    n = int(np.prod(q.input_shape))
    assert 1 <= len(q.boxes) <= MAX_TERMS
    for box in q.boxes:
        assert box.lo.shape == box.hi.shape == (n,)
        assert not np.isnan(box.lo).any() and not np.isnan(box.hi).any()
        assert (box.lo <= box.hi).all()
    assert len(q.unsafe) <= MAX_TERMS
    for term in q.unsafe:
        for lin in term:
            assert all(0 <= j < q.num_outputs and np.isfinite(c) for j, c in lin.terms)
            assert np.isfinite(lin.rhs)


def _read_or_refuse(text: str) -> None:
    try:
        query = read(text)
    except UsageError as err:
        assert str(err) and "\n" not in str(err)
        return
    _well_formed(query)


FUZZ = settings(
    max_examples=200, deadline=3000, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)


@FUZZ
@given(st.lists(sexprs, max_size=6))
def test_random_s_expressions(commands):
    _read_or_refuse("\n".join(_text(c) for c in commands))


@FUZZ
@given(st.integers(3, 4), st.integers(2, 3), st.lists(formulas, min_size=1, max_size=8))
def test_random_asserts_over_declared_variables(n_in, n_out, asserts):
    body = "".join(f"(assert {_text(f)})\n" for f in asserts)
    _read_or_refuse(_declarations(n_in, n_out) + body)


@FUZZ
@given(st.integers(0, 3 * MAX_DEPTH), st.sampled_from(["and", "or", "+", "assert", ""]))
def test_deep_nesting(depth, word):
    inner = "(<= X_0 1)"
    text = _declarations(1, 1) + "(assert " + f"({word} " * depth + inner + ")" * depth + ")"
    _read_or_refuse(text)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("()XY_0123456789.-+e <=>;\n[],abc")), max_size=400))
def test_raw_text(text):
    _read_or_refuse(text)


@FUZZ
@given(st.integers(1, 60), st.integers(2, 4))
def test_disjunctions_multiply_out_or_refuse(count, width):
    """`count` asserts of a `width`-way `or` of disjoint intervals of one input: width**count
    cases, refused past MAX_TERMS (the old reader expanded 2^40 and hung); below it, the
    `width` cases that agree are the union's boxes and the empty ones are dropped."""
    ors = " ".join(f"(and (>= X_0 {k}) (<= X_0 {k + 0.5}))" for k in range(width))
    text = _declarations(1, 1) + f"(assert (or {ors}))\n" * count + "(assert (<= Y_0 0))\n"
    try:
        query = read(text)
    except UsageError as err:
        assert width**count > MAX_TERMS and "10,000" in str(err)
        return
    assert len(query.boxes) == width
