"""Activations (LeakyReLU of any slope, abs, clamp/Hardtanh, sigmoid, tanh): their relaxation
lines bound the function on random intervals, IBP and every CROWN variant contain sampled
outputs, and CROWN is no looser than IBP where its lines attain the function's range."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from threatlang.bounds import BackwardOptions, BoundGraph, Box, LowerSlope, Node
from threatlang.bounds.activations import (
    BoundAbs,
    BoundClamp,
    BoundLeakyReLU,
    BoundSigmoid,
    BoundTanh,
)
from threatlang.bounds.affine import BoundLinear, LinearParams
from threatlang.bounds.crown import Method, forward_pass
from threatlang.bounds.inputs import BoxInput

from .opcheck import (
    SLOPES,
    assert_no_looser,
    check_graph,
    check_interval,
    random_box,
    samples,
    sandwich,
)

PIECEWISE = {
    "leaky_relu_-0.5": lambda: BoundLeakyReLU(-0.5),
    "leaky_relu_0": lambda: BoundLeakyReLU(0.0),
    "leaky_relu_0.2": lambda: BoundLeakyReLU(0.2),
    "leaky_relu_1": lambda: BoundLeakyReLU(1.0),
    "leaky_relu_1.7": lambda: BoundLeakyReLU(1.7),
    "abs": BoundAbs,
    "clamp_min": lambda: BoundClamp(0.3, None),
    "clamp_max": lambda: BoundClamp(None, -0.2),
    "clamp_both": lambda: BoundClamp(-0.5, 0.8),
    "hardtanh": lambda: BoundClamp(-1.0, 1.0),
    "clamp_min_above_max": lambda: BoundClamp(1.0, 0.5),
}
SMOOTH = {"sigmoid": BoundSigmoid, "tanh": BoundTanh}
OPS = {**PIECEWISE, **SMOOTH}
TORCH = {  # the torch functions the ops stand for
    "leaky_relu_-0.5": lambda x: nn.functional.leaky_relu(x, -0.5),
    "abs": torch.abs,
    "clamp_both": lambda x: torch.clamp(x, -0.5, 0.8),
    "hardtanh": nn.functional.hardtanh,
    "clamp_min_above_max": lambda x: torch.clamp(x, 1.0, 0.5),
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
}


@pytest.mark.parametrize("name", sorted(TORCH))
def test_forward_is_the_torch_function(name: str) -> None:
    x = torch.randn(5, 7) * 3
    torch.testing.assert_close(OPS[name]().forward(x), TORCH[name](x))


@pytest.mark.parametrize("slope", SLOPES, ids=lambda s: s.value)
@pytest.mark.parametrize("scale", [0.05, 3.0, 40.0])
@pytest.mark.parametrize("name", sorted(OPS))
def test_relaxation_lines_bound_the_function(name: str, scale: float, slope: LowerSlope) -> None:
    """``lo_line(z) <= f(z) <= up_line(z)`` at samples of every interval, including tiny ones,
    ones ending on a kink and saturated ones (scale 40)."""
    op = OPS[name]()
    gen = torch.Generator().manual_seed(len(name))
    box = random_box((4, 500), gen, scale)
    lo, hi = box.lo, box.hi
    lo[0, :4], hi[0, :4] = torch.tensor([0.0, -1.0, 0.3, -0.5]), torch.tensor([1.0, 0.0, 2.0, 0.8])
    r = op.relax(lo, hi, slope is LowerSlope.ADAPTIVE)
    t = torch.rand(64, *lo.shape, generator=gen)
    t[0], t[1] = 0.0, 1.0
    z = torch.minimum(lo + t * (hi - lo), hi)  # rounding may step past hi
    f = op.forward(z)
    low, up = r.lo_slope * z + r.lo_icpt, r.up_slope * z + r.up_icpt
    # float32 rounding of the products and sums, relative to the magnitudes involved
    tol_lo = 1e-6 * (1 + (r.lo_slope * z).abs() + r.lo_icpt.abs())
    tol_up = 1e-6 * (1 + (r.up_slope * z).abs() + r.up_icpt.abs())
    assert bool((low <= f + tol_lo).all()), float((low - f - tol_lo).max())
    assert bool((up >= f - tol_up).all()), float((f - up - tol_up).max())


@pytest.mark.parametrize("name", sorted(OPS))
def test_interval_contains_outputs(name: str) -> None:
    gen = torch.Generator().manual_seed(1)
    for scale in (0.1, 2.0, 20.0):
        check_interval(OPS[name](), random_box((3, 2, 5, 5), gen, scale), gen)


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_method_bounds_a_sandwich(name: str) -> None:
    """Linear -> op -> Linear: IBP, CROWN-IBP, CROWN, alpha-CROWN contain sampled outputs;
    for piecewise-linear ops CROWN with LowerSlope.ZERO is no looser than IBP."""
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        graph = sandwich(OPS[name](), (2, 3, 3), gen)
        found = check_graph(graph, random_box((3, 3), gen, 1.0), gen)
        if name in PIECEWISE:
            for method in (Method.CROWN_IBP, Method.CROWN):
                assert_no_looser(found, method, LowerSlope.ZERO, Method.IBP)


def test_leaky_relu_with_negative_slope_has_its_exact_range() -> None:
    op = BoundLeakyReLU(-0.5)
    box = op.interval(
        Box.from_bounds(torch.tensor([[-2.0, -2.0, 1.0]]), torch.tensor([[1.0, -1.0, 3.0]]))
    )
    torch.testing.assert_close(box.lo, torch.tensor([[0.0, 0.5, 1.0]]))
    torch.testing.assert_close(box.hi, torch.tensor([[1.0, 1.0, 3.0]]))


def test_sigmoid_upper_line_is_the_tangent_through_the_lower_endpoint() -> None:
    """Crossing the inflection point with the chord cutting into f, the upper line is the
    tangent from ``(l, f(l))`` (Zhang et al. 2018): it meets that point and touches f."""
    op = BoundSigmoid()
    lo, hi = torch.tensor([[-4.0]]), torch.tensor([[3.0]])
    r = op.relax(lo, hi, False)
    assert abs(float(r.up_slope * lo + r.up_icpt - torch.sigmoid(lo))) < 1e-5
    z = torch.linspace(0, 3, 3001)
    gap = (r.up_slope[0] * z + r.up_icpt[0] - torch.sigmoid(z)).min()
    assert 0 <= float(gap) < 1e-5


def test_clamp_unstable_neurons_are_those_crossing_a_kink() -> None:
    op = BoundClamp(-1.0, 1.0)
    pre = Box.from_bounds(
        torch.tensor([[-2.0, -0.5, 0.5, -3.0]]), torch.tensor([[-1.5, 0.5, 2.0, 3.0]])
    )
    assert op.unstable(pre).tolist() == [[False, False, True, True]]
    assert BoundSigmoid().unstable(pre) is None  # every neuron of a smooth op is relaxed


def test_crown_tightens_the_input_of_every_nonlinear_op() -> None:
    """Linear -> sigmoid -> Linear -> tanh: the tanh's input box is tightened by CROWN (no
    isinstance list names the op) and still contains the sampled values."""
    gen = torch.Generator().manual_seed(4)

    def lin(i: int, o: int) -> BoundLinear:
        w, b = torch.randn(o, i, generator=gen), torch.randn(o, generator=gen)
        return BoundLinear(LinearParams(w, b))

    graph = BoundGraph(
        [
            Node(None, (), "x"),
            Node(lin(3, 8), (0,), "l1"),
            Node(BoundSigmoid(), (1,), "s"),
            Node(lin(8, 8), (2,), "l2"),
            Node(BoundTanh(), (3,), "t"),
            Node(lin(8, 2), (4,), "l3"),
        ]
    )
    box = random_box((2, 3), gen, 0.5)
    ibp = forward_pass(graph, BoxInput(box), BackwardOptions(), crown=False, keep={3})
    crown = forward_pass(graph, BoxInput(box), BackwardOptions(), crown=True, keep={3})
    width_ibp = (ibp.boxes[3].radius).sum()
    width_crown = (crown.boxes[3].radius).sum()
    assert float(width_crown) < float(width_ibp)
    xs = samples(box.lo, box.hi, 500, gen)
    h = graph.forward(xs.reshape(-1, 3), stop=4).reshape(500, 2, 8)
    tight = crown.boxes[3]
    assert bool((h >= tight.lo - 1e-5).all() and (h <= tight.hi + 1e-5).all())


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_s_shaped_lines_hold_in_float64(name: str) -> None:
    """Branch and bound runs in float64: the lines hold there to 1e-12."""
    op = SMOOTH[name]()
    gen = torch.Generator().manual_seed(9)
    box = random_box((3, 400), gen, 6.0)
    lo, hi = box.lo.double(), box.hi.double()
    r = op.relax(lo, hi, False)
    assert r.lo_slope.dtype == torch.float64
    t = torch.rand(50, *lo.shape, generator=gen, dtype=torch.float64)
    z = torch.minimum(lo + t * (hi - lo), hi)
    f = op.forward(z)
    assert bool((r.lo_slope * z + r.lo_icpt <= f + 1e-12).all())
    assert bool((r.up_slope * z + r.up_icpt >= f - 1e-12).all())
