"""Linear shape ops of the torch.export graph (permute, slice, select, index, squeeze,
unsqueeze, expand, constant pad, sum, mean, matmul with a constant, upsampling): each computes
the torch op it stands for, back-substitutes through its exact adjoint, and its IBP and CROWN
bounds contain sampled outputs; CROWN through it is no looser than IBP."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from threatlang.bounds import LowerSlope, UnsupportedOp
from threatlang.bounds.crown import Method
from threatlang.bounds.shape_ops import (
    BoundExpand,
    BoundIndex,
    BoundMatmulConst,
    BoundMean,
    BoundPad,
    BoundPermute,
    BoundSelect,
    BoundSlice,
    BoundSqueeze,
    BoundSum,
    BoundTranspose,
    BoundUnsqueeze,
    BoundUpsample,
    MatmulSide,
    UpsampleMode,
)

from .opcheck import (
    assert_no_looser,
    check_adjoint,
    check_graph,
    check_interval,
    random_box,
    sandwich,
)

BIG = 9223372036854775807  # ATen's "to the end"
W = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
W_BATCHED = torch.randn(1, 2, 4, 5, generator=torch.Generator().manual_seed(1))
W_LEFT = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
IDX = torch.tensor([[0, 2], [1, 1]])

Make = Callable[[torch.dtype], object]
# name: (op factory by dtype, sample shape of the input, the torch function it stands for)
CASES: dict[str, tuple[Make, tuple[int, ...], Callable[[Tensor], Tensor]]] = {
    "permute": (lambda dt: BoundPermute((0, 2, 3, 1)), (2, 3, 4), lambda x: x.permute(0, 2, 3, 1)),
    "permute_neg": (
        lambda dt: BoundPermute((0, -1, 1, 2)),
        (2, 3, 4),
        lambda x: x.permute(0, 3, 1, 2),
    ),
    "transpose": (lambda dt: BoundTranspose(-1, 1), (2, 3, 4), lambda x: x.transpose(1, 3)),
    "slice_step": (lambda dt: BoundSlice(2, 0, BIG, 2), (2, 3, 4), lambda x: x[:, :, ::2]),
    "slice_neg": (lambda dt: BoundSlice(3, 1, -1), (2, 3, 4), lambda x: x[..., 1:-1]),
    "slice_batch_noop": (lambda dt: BoundSlice(0, 0, BIG), (2, 3, 4), lambda x: x),
    "select": (lambda dt: BoundSelect(1, 1), (2, 3, 4), lambda x: x[:, 1]),
    "select_neg": (lambda dt: BoundSelect(-1, -2), (2, 3, 4), lambda x: x[..., -2]),
    "index": (
        lambda dt: BoundIndex(3, torch.tensor([3, 0, 0, 1])),
        (2, 3, 4),
        lambda x: x[..., [3, 0, 0, 1]],
    ),
    "index_2d": (lambda dt: BoundIndex(2, IDX), (2, 3, 4), lambda x: x[:, :, IDX]),
    "squeeze": (lambda dt: BoundSqueeze((1, 3)), (1, 3, 1), lambda x: x.squeeze(3).squeeze(1)),
    "squeeze_all": (lambda dt: BoundSqueeze(), (1, 3, 1), lambda x: x.reshape(x.shape[0], 3)),
    "unsqueeze": (lambda dt: BoundUnsqueeze(-1), (2, 3), lambda x: x.unsqueeze(-1)),
    "expand": (lambda dt: BoundExpand((-1, 2, 3, 5)), (1, 3, 1), lambda x: x.expand(-1, 2, 3, 5)),
    "pad": (lambda dt: BoundPad((1, 2, 0, 1)), (2, 3, 4), lambda x: F.pad(x, (1, 2, 0, 1))),
    "pad_value": (
        lambda dt: BoundPad((1, 1), 0.7),
        (2, 3, 4),
        lambda x: F.pad(x, (1, 1), value=0.7),
    ),
    "pad_crop": (
        lambda dt: BoundPad((-1, 1, 2, -1), -0.3),
        (2, 3, 4),
        lambda x: F.pad(x, (-1, 1, 2, -1), value=-0.3),
    ),
    "sum": (lambda dt: BoundSum((2, 3)), (2, 3, 4), lambda x: x.sum((2, 3))),
    "sum_all": (lambda dt: BoundSum((1, 2, 3)), (2, 3, 4), lambda x: x.sum((1, 2, 3))),
    "sum_keepdim": (lambda dt: BoundSum(-1, True), (2, 3, 4), lambda x: x.sum(-1, keepdim=True)),
    "mean": (lambda dt: BoundMean((1, 3)), (2, 3, 4), lambda x: x.mean((1, 3))),
    "mean_keepdim": (
        lambda dt: BoundMean((-1,), True),
        (2, 3, 4),
        lambda x: x.mean(-1, keepdim=True),
    ),
    "matmul_right": (
        lambda dt: BoundMatmulConst(W.to(dt), MatmulSide.RIGHT),
        (2, 3, 4),
        lambda x: x @ W,
    ),
    "matmul_right_batched": (
        lambda dt: BoundMatmulConst(W_BATCHED.to(dt), MatmulSide.RIGHT),
        (1, 3, 4),
        lambda x: x @ W_BATCHED,
    ),
    "matmul_left": (
        lambda dt: BoundMatmulConst(W_LEFT.to(dt), MatmulSide.LEFT),
        (2, 3, 4),
        lambda x: W_LEFT @ x,
    ),
    "nearest_x2": (
        lambda dt: BoundUpsample(UpsampleMode.NEAREST, scale_factors=(2.0, 2.0)),
        (2, 3, 4),
        lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
    ),
    "nearest_size": (
        lambda dt: BoundUpsample(UpsampleMode.NEAREST, output_size=(5, 7)),
        (2, 3, 4),
        lambda x: F.interpolate(x, size=(5, 7), mode="nearest"),
    ),
    "nearest_exact": (
        lambda dt: BoundUpsample(UpsampleMode.NEAREST_EXACT, scale_factors=(1.5, 1.5)),
        (2, 3, 4),
        lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest-exact"),
    ),
    "bilinear": (
        lambda dt: BoundUpsample(UpsampleMode.BILINEAR, scale_factors=(2.0, 2.0)),
        (2, 3, 4),
        lambda x: F.interpolate(x, scale_factor=2, mode="bilinear"),
    ),
    "bilinear_corners": (
        lambda dt: BoundUpsample(UpsampleMode.BILINEAR, output_size=(5, 9), align_corners=True),
        (2, 3, 4),
        lambda x: F.interpolate(x, size=(5, 9), mode="bilinear", align_corners=True),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_forward_is_the_torch_op(name: str) -> None:
    make, shape, ref = CASES[name]
    x = torch.randn(3, *shape)
    torch.testing.assert_close(make(torch.float32).forward(x), ref(x))


@pytest.mark.parametrize("name", sorted(CASES))
def test_backward_is_the_exact_adjoint(name: str) -> None:
    make, shape, _ = CASES[name]
    check_adjoint(make(torch.float64), shape, torch.Generator().manual_seed(3))


@pytest.mark.parametrize("name", sorted(CASES))
def test_bounds_contain_sampled_outputs(name: str) -> None:
    make, shape, _ = CASES[name]
    gen = torch.Generator().manual_seed(5)
    check_interval(make(torch.float32), random_box((3, *shape), gen), gen)
    graph = sandwich(make(torch.float32), shape, gen)
    found = check_graph(graph, random_box((3, 3), gen, 1.0), gen)
    assert_no_looser(found, Method.CROWN, LowerSlope.ZERO, Method.IBP)


REFUSED = {
    "permute moves the batch": (BoundPermute((1, 0, 2, 3)), (2, 3, 4)),
    "slice of the batch": (BoundSlice(0, 1, None), (2, 3, 4)),
    "select on the batch": (BoundSelect(0, 0), (2, 3, 4)),
    "sum over the batch": (BoundSum((0, 1)), (2, 3, 4)),
    "unsqueeze before the batch": (BoundUnsqueeze(0), (2, 3, 4)),
    "expand of the batch": (BoundExpand((6, 2, 3, 4)), (2, 3, 4)),
    "pad of the batch": (BoundPad((0, 0, 0, 0, 0, 0, 1, 1)), (2, 3, 4)),
    "matmul mixing rows": (BoundMatmulConst(torch.ones(3, 3), MatmulSide.LEFT), (4,)),
    "matmul constant per row": (BoundMatmulConst(torch.ones(3, 4, 2), MatmulSide.RIGHT), (5, 4)),
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_ops_across_the_batch_are_refused_by_name(name: str) -> None:
    op, shape = REFUSED[name]
    with pytest.raises(UnsupportedOp, match="cannot bound"):
        op.forward(torch.zeros(3, *shape))
