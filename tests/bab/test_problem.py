"""The property's tensors: `violated` on points and `closed_terms` on bounds mean what the
formula says (checked against a direct evaluation)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from threatlang.backends.bab.problem import build_problem  # noqa: E402
from threatlang.errors import UsageError  # noqa: E402
from threatlang.ir.properties import (  # noqa: E402
    Conjunction,
    Disjunction,
    LinearConstraint,
    OutputsSatisfy,
)

from .helpers import holds  # noqa: E402

PROP = OutputsSatisfy(
    Conjunction(
        (
            Disjunction((LinearConstraint((1, -1), "<", 0), LinearConstraint((0, 0, 1), ">=", 1))),
            LinearConstraint((0, 1), "<=", 2),
        )
    )
)


def test_violated_matches_the_formula_including_boundaries():
    problem = build_problem(PROP, 3)
    y = np.random.default_rng(0).integers(-3, 4, size=(500, 3)).astype(float)
    expect = np.array([not holds(PROP.formula, row) for row in y])
    assert (problem.violated(y) == expect).all()
    assert expect.any() and (~expect).any()


def test_a_term_closes_only_when_an_atom_is_refuted():
    problem = build_problem(PROP, 3)
    # lower bounds that refute nothing keep every term open; +inf bounds refute everything
    assert not problem.closed_terms(
        torch.full((1, len(problem.s)), -1e9, dtype=torch.float64)
    ).any()
    assert problem.closed_terms(torch.full((1, len(problem.s)), 1e9, dtype=torch.float64)).all()


def test_too_few_outputs_is_one_sentence():
    with pytest.raises(UsageError, match=r"constrains y\[2\], but the network has 2 outputs"):
        build_problem(PROP, 2)
