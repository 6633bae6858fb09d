"""`threat box` and `require outputs { ... }`: what they lower to, positioned errors, JSON round
trip, and the negation (where the property fails) agreeing with a direct evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from threatlang.errors import SpecError
from threatlang.ir.properties import (
    Conjunction,
    Disjunction,
    LinearConstraint,
    OutputsSatisfy,
    Relation,
    violations,
)
from threatlang.ir.threats import InputBox
from threatlang.parse import parse
from threatlang.serialize import document, load_document

from .helpers import holds

SPEC = """threatlang 1
spec acas {
  model onnx("net.onnx")
  threat box {
    lower [0.6, -0.5, -0.5, 0.45, -0.5]
    upper [0.68, 0.5, 0.5, 0.5, -0.45]
  }
  require outputs {
    linear "y[0] <= 3.99"
    any {
      linear "y[0] - y[1] <= 0"
      linear "2*y[2] >= y[3] + 0.5"
    }
  }
  certify bab { time_limit 60s }
}
"""


def test_box_and_outputs_lower_to_the_ir():
    spec = parse(SPEC)
    assert spec.threat == InputBox((0.6, -0.5, -0.5, 0.45, -0.5), (0.68, 0.5, 0.5, 0.5, -0.45))
    assert spec.require == OutputsSatisfy(
        Conjunction(
            (
                LinearConstraint((1.0,), Relation.LE, 3.99),
                Disjunction(
                    (
                        LinearConstraint((1.0, -1.0), "<=", 0.0),
                        LinearConstraint((0.0, 0.0, 2.0, -1.0), ">=", 0.5),
                    )
                ),
            )
        )
    )
    again = load_document(json.loads(json.dumps(document([spec]))))[0]
    assert again == spec


def test_bounds_form_equals_lower_upper():
    text = SPEC.replace(
        "lower [0.6, -0.5, -0.5, 0.45, -0.5]\n    upper [0.68, 0.5, 0.5, 0.5, -0.45]",
        "bounds [(0.6, 0.68), (-0.5, 0.5), (-0.5, 0.5), (0.45, 0.5), (-0.5, -0.45)]",
    )
    assert parse(text).threat == parse(SPEC).threat


@pytest.mark.parametrize(
    ("old", "new", "message", "line", "col"),
    [
        ('"y[0] - y[1] <= 0"', '"y[0] - y[1] <= 0 <= 3"', "one comparison", 11, 32),
        ('"y[0] - y[1] <= 0"', '"y[0] $ y[1]"', "unexpected '$'", 11, 20),
        ('"y[0] - y[1] <= 0"', '"y[0] - <= 0"', "term is missing", 11, 22),
        ('"y[0] - y[1] <= 0"', '"3 <= 4"', "involves no output", 11, 14),
        ('"y[0] - y[1] <= 0"', '"y[0] * y[1] <= 1"', "unexpected '*'", 11, 20),
        ('linear "y[0] <= 3.99"', 'lineer "y[0] <= 3.99"', "unknown item 'lineer'", 9, 5),
        ("upper [0.68, 0.5, 0.5, 0.5, -0.45]", "upper [0.68, 0.5]", "one bound per", 6, 5),
        (
            "upper [0.68, 0.5, 0.5, 0.5, -0.45]",
            "upper [0.5, 0.5, 0.5, 0.5, -0.45]",
            "lower 0.6",
            6,
            5,
        ),
        ("any {", "any 3 {", "any takes a block", 10, 9),
    ],
)
def test_errors_point_at_the_fault(old, new, message, line, col):
    assert old in SPEC
    with pytest.raises(SpecError) as err:
        parse(SPEC.replace(old, new), "x.threat")
    d = err.value.diagnostics[0]
    assert message in d.message
    assert (d.span.file, d.span.line, d.span.column) == ("x.threat", line, col)


def test_require_blocks_only_for_outputs():
    with pytest.raises(SpecError, match="require takes no block"):
        parse(SPEC.replace("require outputs {", "require label_unchanged {"))
    with pytest.raises(SpecError, match="needs a block"):
        parse(SPEC.replace("require outputs {", "require outputs\n  certify bab\n  foo {"))


def _random_formula(rng, depth=0):
    if depth >= 2 or rng.random() < 0.4:
        coeffs = tuple(float(v) for v in rng.integers(-2, 3, size=3))
        if not any(coeffs):
            coeffs = (1.0,)
        return LinearConstraint(
            coeffs, rng.choice(["<=", "<", ">=", ">"]), float(rng.integers(-2, 3))
        )
    parts = tuple(_random_formula(rng, depth + 1) for _ in range(rng.integers(1, 4)))
    return (Conjunction if rng.random() < 0.5 else Disjunction)(parts)


def test_violations_are_exactly_where_the_formula_fails():
    """On integer outputs (boundaries included) some term holds entirely iff the formula fails."""
    rng = np.random.default_rng(0)
    for _ in range(60):
        f = _random_formula(rng)
        terms = violations(f)
        for y in rng.integers(-3, 4, size=(40, 3)).astype(float):
            fails = any(all(holds(c, y) for c in term) for term in terms)
            assert fails == (not holds(f, y))


def test_constraint_text_parses_back():
    rng = np.random.default_rng(1)
    from threatlang.ir.span import Span
    from threatlang.lower.formulas import parse_constraint
    from threatlang.lower.reader import Diagnostics
    from threatlang.syntax import Str

    for _ in range(100):
        c = _random_formula(rng, depth=2)
        c = LinearConstraint(tuple(v * 0.37 for v in c.coeffs), c.op, c.rhs - 0.1)
        diags = Diagnostics()
        assert parse_constraint(Str(c.text(), Span("t", 1, 1)), Span("t", 1, 1), diags) == c
