"""Affine ops with weights and broadcasting, and max over dims: ConvTranspose2d (groups,
stride, padding, output_padding, dilation), Linear over the last dim of a 4-d tensor (issue
19's crash), constant arithmetic and sums that broadcast, and amax over channels."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from threatlang.bounds import BoundGraph, Box, LowerSlope, Node, UnsupportedOp
from threatlang.bounds.affine import (
    BoundConstArith,
    BoundConvTranspose2d,
    BoundFlatten,
    BoundLinear,
    LinearParams,
)
from threatlang.bounds.crown import Method
from threatlang.bounds.merge import BoundAdd
from threatlang.bounds.nonlinear import BoundAmax, BoundReLU

from .opcheck import (
    assert_no_looser,
    check_adjoint,
    check_graph,
    check_interval,
    random_box,
    sandwich,
)

# (C_in, C_out, kernel, stride, padding, output_padding, groups, dilation)
CONV_T = {
    "plain": (2, 3, 3, 1, 0, 0, 1, 1),
    "strided": (2, 3, 3, 2, 1, 1, 1, 1),
    "grouped": (4, 6, 2, 2, 0, 1, 2, 1),
    "dilated": (2, 2, 3, 2, 2, 1, 1, 2),
    "depthwise_pad": (3, 3, (3, 2), (1, 2), (1, 0), (0, 1), 3, (2, 1)),
}


def _conv_t(
    name: str, dtype: torch.dtype = torch.float32
) -> tuple[BoundConvTranspose2d, nn.Module]:
    c_in, c_out, k, s, p, op, g, d = CONV_T[name]
    torch.manual_seed(len(name))
    m = nn.ConvTranspose2d(c_in, c_out, k, s, p, op, g, True, d).to(dtype)
    bound = BoundConvTranspose2d(m.weight.detach(), m.bias.detach(), s, p, op, g, d)
    return bound, m


@pytest.mark.parametrize("name", sorted(CONV_T))
def test_conv_transpose_is_sound_and_exact(name: str) -> None:
    op, m = _conv_t(name)
    x = torch.randn(2, CONV_T[name][0], 4, 5)
    with torch.no_grad():
        torch.testing.assert_close(op.forward(x), m(x))
    gen = torch.Generator().manual_seed(2)
    check_adjoint(_conv_t(name, torch.float64)[0], (CONV_T[name][0], 4, 5), gen)
    check_interval(op, random_box((3, CONV_T[name][0], 4, 5), gen), gen)
    found = check_graph(
        sandwich(op, (CONV_T[name][0], 3, 3), gen), random_box((2, 3), gen, 1.0), gen
    )
    assert_no_looser(found, Method.CROWN, LowerSlope.ZERO, Method.IBP)


def test_linear_over_the_last_dim_of_a_4d_tensor() -> None:
    """Issue 19: ``nn.Linear`` applied to (N, C, H, W) crashed CROWN (the bias was summed as if
    features were 2-d). Linear(W) -> ReLU -> flatten -> Linear, every method, sound."""
    gen = torch.Generator().manual_seed(0)
    inner = LinearParams(torch.randn(5, 4, generator=gen), torch.randn(5, generator=gen))
    last = LinearParams(torch.randn(3, 2 * 3 * 5, generator=gen), torch.randn(3, generator=gen))
    graph = BoundGraph(
        [
            Node(None, (), "x"),
            Node(BoundLinear(inner), (0,), "l1"),
            Node(BoundReLU(nn.ReLU()), (1,), "relu"),
            Node(BoundFlatten(nn.Flatten()), (2,), "flatten"),
            Node(BoundLinear(last), (3,), "l2"),
        ]
    )
    check_graph(graph, random_box((2, 2, 3, 4), gen, 1.0), gen)
    check_adjoint(
        BoundLinear(LinearParams(inner.weight.double(), inner.bias.double())), (2, 3, 4), gen
    )


CONSTS = {  # kind, constant, input sample shape: broadcasts that enlarge the input included
    "mul_channel_broadcast": ("mul", torch.tensor([2.0, -0.5, 1.5]).reshape(3, 1, 1), (1, 4, 4)),
    "div_row_broadcast": ("div", torch.tensor([[-2.0], [4.0]]), (1, 5)),
    "add_enlarging": ("add", torch.arange(6.0).reshape(1, 2, 3, 1) / 3, (1, 3, 4)),
    "rsub_enlarging": ("rsub", torch.ones(2, 1, 1), (1, 3, 3)),
    "sub_same_shape": ("sub", torch.randn(2, 3, 3), (2, 3, 3)),
    "mul_scalar": ("mul", -0.7, (2, 3)),
}


@pytest.mark.parametrize("name", sorted(CONSTS))
def test_constant_arithmetic_with_broadcasting(name: str) -> None:
    kind, c, shape = CONSTS[name]
    op = BoundConstArith(kind, lambda: c)
    x = torch.randn(2, *shape)
    ref = {"mul": x * c, "div": x / c, "add": x + c, "sub": x - c, "rsub": c - x}[kind]
    torch.testing.assert_close(op.forward(x), ref)
    gen = torch.Generator().manual_seed(1)
    c64 = c.double() if isinstance(c, torch.Tensor) else c
    check_adjoint(BoundConstArith(kind, lambda: c64), shape, gen)
    check_interval(op, random_box((3, *shape), gen), gen)
    found = check_graph(sandwich(op, shape, gen), random_box((2, 3), gen, 1.0), gen)
    assert_no_looser(found, Method.CROWN, LowerSlope.ZERO, Method.IBP)


def test_constant_varying_per_row_is_refused() -> None:
    op = BoundConstArith("mul", lambda: torch.ones(3, 2))
    with pytest.raises(UnsupportedOp, match="varies per row"):
        op.forward(torch.zeros(3, 2))


def test_sum_of_computed_tensors_broadcasts_per_channel() -> None:
    """``h + g`` with ``g`` of shape (N, C, 1, 1): coefficients of the repeated ``g`` summed."""
    gen = torch.Generator().manual_seed(3)
    w1 = LinearParams(torch.randn(2 * 9, 3, generator=gen), torch.randn(18, generator=gen))
    w2 = LinearParams(torch.randn(2, 3, generator=gen), torch.randn(2, generator=gen))
    out = LinearParams(torch.randn(4, 18, generator=gen), torch.randn(4, generator=gen))
    from threatlang.bounds.affine import BoundReshape

    graph = BoundGraph(
        [
            Node(None, (), "x"),
            Node(BoundLinear(w1), (0,), "a"),
            Node(BoundReshape(lambda x, _: x.reshape(-1, 2, 3, 3), ()), (1,), "va"),
            Node(BoundLinear(w2), (0,), "b"),
            Node(BoundReshape(lambda x, _: x.reshape(-1, 2, 1, 1), ()), (3,), "vb"),
            Node(BoundAdd(), (2, 4), "add"),
            Node(BoundReLU(nn.ReLU()), (5,), "relu"),
            Node(BoundFlatten(nn.Flatten()), (6,), "flat"),
            Node(BoundLinear(out), (7,), "out"),
        ]
    )
    check_graph(graph, random_box((3, 3), gen, 1.0), gen)
    with pytest.raises(UnsupportedOp, match="batch"):
        BoundAdd().forward_all([torch.zeros(3, 2), torch.zeros(1, 2)])


AMAX = {
    "channels_keepdim": ((1,), True, (3, 2, 2)),
    "channels": ((1,), False, (3, 2, 2)),
    "last_two": ((-1, -2), False, (2, 3, 2)),
    "one_dim_of_3d": ((2,), True, (4, 3)),
}


@pytest.mark.parametrize("name", sorted(AMAX))
def test_amax_is_sound_and_no_looser_than_ibp(name: str) -> None:
    dims, keepdim, shape = AMAX[name]
    op = BoundAmax(dims, keepdim)
    x = torch.randn(2, *shape)
    torch.testing.assert_close(op.forward(x), x.amax(dims, keepdim))
    gen = torch.Generator().manual_seed(4)
    check_interval(op, random_box((3, *shape), gen), gen)
    for _ in range(3):
        found = check_graph(sandwich(op, shape, gen), random_box((2, 3), gen, 1.0), gen)
        assert_no_looser(found, Method.CROWN, LowerSlope.ZERO, Method.IBP)


def test_amax_is_exact_where_one_element_dominates() -> None:
    """When one element's lower bound beats every other upper bound, the max is that element
    and CROWN's lines are exact: the back-substituted bound equals the element's."""
    op = BoundAmax((1,), False)
    pre = Box.from_bounds(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[3.0, 1.5, 1.9]]))
    a = torch.tensor([[-1.0]])  # (N, S) on the scalar max of each row
    a_in, bias = op.backward(a, {id(op): pre}, None)  # type: ignore[arg-type]
    assert a_in.tolist() == [[[-1.0, 0.0, 0.0]]] and float(bias) == 0.0
    loose = Box.from_bounds(torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[3.0, 2.5, 1.9]]))
    a_in, bias = op.backward(a, {id(op): loose}, None)  # type: ignore[arg-type]
    assert a_in.abs().sum() == 0 and float(bias) == -3.0  # the constant upper bound
    with pytest.raises(UnsupportedOp, match="batch"):
        BoundAmax((0,), False).forward(torch.zeros(2, 3))
