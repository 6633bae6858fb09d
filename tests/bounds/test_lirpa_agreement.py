"""Our engine against auto_LiRPA on the zoo: the same IBP bounds (relative 1e-5), CROWN bounds
at least as tight, and nothing tighter than auto_LiRPA's alpha-CROWN allows for."""

from __future__ import annotations

import pytest
import torch

from threatlang.bounds import Box, LowerSlope, capture
from threatlang.bounds.crown import Method, bound_graph
from threatlang.bounds.engine import margin_matrix
from threatlang.bounds.inputs import BoxInput

from .zoo import ZOO, build, inputs

pytest.importorskip("auto_LiRPA")
from threatlang.bounds.lirpa import LirpaNetwork  # noqa: E402

EPS = (0.02, 0.1)


def _case(name: str, eps: float):
    model = build(name)
    x = inputs()
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    y = model(x).argmax(1)
    c = margin_matrix(y, 4)
    return model, x, lo, hi, c


def _theirs(model, lo, hi, c, method: Method) -> torch.Tensor:
    lb, _ = LirpaNetwork(model).bounds(BoxInput(Box.from_bounds(lo, hi)), c, method)
    return lb


@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize("name", sorted(ZOO))
def test_ibp_equals_auto_lirpa(name: str, eps: float) -> None:
    model, x, lo, hi, c = _case(name, eps)
    with torch.no_grad():
        ours = bound_graph(capture(model, x), lo, hi, Method.IBP, c, need_upper=False).lb
        theirs = _theirs(model, lo, hi, c, Method.IBP)
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-5), (ours - theirs).abs().max()


@pytest.mark.parametrize("eps", EPS)
@pytest.mark.parametrize("name", sorted(ZOO))
def test_crown_equals_or_beats_auto_lirpa(name: str, eps: float) -> None:
    model, x, lo, hi, c = _case(name, eps)
    with torch.no_grad():
        ours = bound_graph(
            capture(model, x), lo, hi, Method.CROWN, c, slope=LowerSlope.ADAPTIVE, need_upper=False
        ).lb
        theirs = _theirs(model, lo, hi, c, Method.CROWN)
    tol = 1e-5 * (1 + theirs.abs())
    assert bool((ours >= theirs - tol).all()), (ours - theirs).min()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ZOO))
def test_crown_not_tighter_than_auto_lirpa_alpha_crown(name: str) -> None:
    """With auto_LiRPA's intermediate boxes (CROWN, not intersected with IBP), alpha-CROWN
    optimises, from CROWN's slopes, every relaxation our CROWN uses and keeps its best: ours
    clearly above it would mean a relaxation that is not sound. (Intersected with IBP, ours
    may legitimately be tighter; soundness against the exact optimum is tested apart.)"""
    model, x, lo, hi, c = _case(name, 0.1)
    with torch.no_grad():
        ours = bound_graph(
            capture(model, x),
            lo,
            hi,
            Method.CROWN,
            c,
            slope=LowerSlope.ADAPTIVE,
            need_upper=False,
            intersect=False,
        ).lb
    theirs = _theirs(model, lo, hi, c, Method.ALPHA_CROWN)
    tol = 1e-4 * (1 + theirs.abs())
    assert bool((ours <= theirs + tol).all()), (ours - theirs).max()
