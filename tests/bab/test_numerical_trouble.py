"""A NaN or +inf bound from any engine is never read as a decision: the search stops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from threatlang.backends.bab.problem import NumericalTrouble, Problem


def _problem() -> Problem:
    return Problem(np.array([[1.0]]), np.array([0.0]), np.array([True]), np.array([[True]]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_an_untrusted_bound_raises_instead_of_closing(bad: float) -> None:
    lower = torch.tensor([[1.0], [bad]], dtype=torch.float64)
    with pytest.raises(NumericalTrouble):
        _problem().closed_terms(lower)


def test_finite_bounds_decide() -> None:
    closed = _problem().closed_terms(torch.tensor([[1.0], [-1.0], [-torch.inf]]))
    assert closed[:, 0].tolist() == [True, False, False]
