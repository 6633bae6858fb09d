"""Linear shape ops of a torch.export core-ATen graph: re-indexing (permute, slice, select,
index, squeeze, unsqueeze, expand, constant pad, nearest upsampling) and linear maps without
weights to learn (sum, mean, bilinear upsampling, a matmul with a constant matrix).

Each is linear in its input, so IBP applies it to the centre and, with the absolute values
of its weights, to the radius (here all weights are non-negative, except a matmul's), and
CROWN carries coefficients back through its adjoint: exact, no relaxation.

Dimensions are those of the whole tensor, batch first (as ATen's arguments give them); an op
that would read across, drop or move the batch dimension is refused with
:class:`UnsupportedOp`, since every bound row must stay one input row.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import BackwardOptions, BoundOp, Trace, spec_sum
from .box import Box
from .errors import UnsupportedOp


class ShapeOp(BoundOp):
    """A linear op without bias whose weights are non-negative: IBP maps the centre and the
    radius by the op itself."""

    affine = True

    def __init__(self, name: str, where: str) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.name, self.where = name, where

    def refuse(self, why: str) -> UnsupportedOp:
        return UnsupportedOp(self.name, self.where, why)

    def dim(self, d: int, ndim: int) -> int:
        """``d`` as a non-negative, non-batch dimension of an ``ndim``-d tensor."""
        if not -ndim <= d < ndim:
            raise self.refuse(f"dimension {d} of a {ndim}-d tensor")
        d %= ndim
        if d == 0:
            raise self.refuse("the op acts on the batch dimension")
        return d

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return Box(self.forward(box.centre), self.forward(box.radius))

    def in_shape(self, trace: Trace) -> torch.Size:
        return self.pre(trace).centre.shape[1:]

    def no_bias(self, a: Tensor) -> Tensor:
        return a.new_zeros(a.shape[:2])


class BoundPermute(ShapeOp):
    """``x.permute(dims)`` keeping the batch dimension first."""

    def __init__(self, dims: Sequence[int], name: str = "permute", where: str = "") -> None:
        super().__init__(name, where)
        self.dims = tuple(int(d) for d in dims)

    def _dims(self, ndim: int) -> tuple[int, ...]:
        dims = tuple(d % ndim for d in self.dims)
        if len(dims) != ndim or sorted(dims) != list(range(ndim)):
            raise self.refuse(f"permutation {self.dims} of a {ndim}-d tensor")
        if dims[0] != 0:
            raise self.refuse("the permutation moves the batch dimension")
        return dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(self._dims(x.dim()))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        dims = self._dims(a.dim() - 1)
        inverse = [0] * len(dims)
        for i, d in enumerate(dims):
            inverse[d] = i
        return a.permute(0, 1, *(inverse[d] + 1 for d in range(1, len(dims)))), self.no_bias(a)


class BoundTranspose(ShapeOp):
    """``x.transpose(dim0, dim1)`` of two non-batch dimensions."""

    def __init__(self, dim0: int, dim1: int, name: str = "transpose", where: str = "") -> None:
        super().__init__(name, where)
        self.dim0, self.dim1 = int(dim0), int(dim1)

    def forward(self, x: Tensor) -> Tensor:
        return x.transpose(self.dim(self.dim0, x.dim()), self.dim(self.dim1, x.dim()))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        ndim = a.dim() - 1
        d0, d1 = self.dim(self.dim0, ndim), self.dim(self.dim1, ndim)
        return a.transpose(d0 + 1, d1 + 1), self.no_bias(a)


class BoundSlice(ShapeOp):
    """``x[..., start:end:step]`` along ``dim`` (ATen ``slice.Tensor``: ``None`` or out-of-range
    ends are clamped, negative ones count from the end). Along the batch dimension only the
    full slice, which ATen emits as a no-op, is accepted."""

    def __init__(
        self,
        dim: int,
        start: int | None = None,
        end: int | None = None,
        step: int = 1,
        name: str = "slice",
        where: str = "",
    ) -> None:
        super().__init__(name, where)
        if step < 1:
            raise self.refuse(f"slice step {step}")
        self.d, self.start, self.end, self.step = int(dim), start, end, int(step)

    def _index(self, shape: Sequence[int]) -> tuple[slice, ...] | None:
        """Index of the slice into a tensor of ``shape``; None: the slice keeps everything."""
        ndim = len(shape)
        if not -ndim <= self.d < ndim:
            raise self.refuse(f"dimension {self.d} of a {ndim}-d tensor")
        d = self.d % ndim
        sl = slice(self.start, self.end, self.step)
        if range(shape[d])[sl] == range(shape[d]):
            return None
        if d == 0:
            raise self.refuse("a slice of the batch dimension")
        return (slice(None),) * d + (sl,)

    def forward(self, x: Tensor) -> Tensor:
        idx = self._index(x.shape)
        return x if idx is None else x[idx]

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        n, s = a.shape[:2]
        in_shape = self.in_shape(trace)
        idx = self._index((n, *in_shape))
        if idx is None:
            return a, self.no_bias(a)
        a_in = a.new_zeros(n, s, *in_shape)
        a_in[(slice(None), *idx)] = a
        return a_in, self.no_bias(a)


class BoundSelect(ShapeOp):
    """``x.select(dim, index)`` (``x[:, i]``): one position of a non-batch dimension."""

    def __init__(self, dim: int, index: int, name: str = "select", where: str = "") -> None:
        super().__init__(name, where)
        self.d, self.index = int(dim), int(index)

    def _at(self, shape: Sequence[int]) -> tuple[int, int]:
        d = self.dim(self.d, len(shape))
        if not -shape[d] <= self.index < shape[d]:
            raise self.refuse(f"index {self.index} of a dimension of size {shape[d]}")
        return d, self.index % shape[d]

    def forward(self, x: Tensor) -> Tensor:
        return x.select(*self._at(x.shape))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        n, s = a.shape[:2]
        in_shape = self.in_shape(trace)
        d, i = self._at((n, *in_shape))
        a_in = a.new_zeros(n, s, *in_shape)
        a_in.select(d + 1, i).copy_(a)
        return a_in, self.no_bias(a)


class BoundIndex(ShapeOp):
    """``x.index_select(dim, index)`` with a constant integer index tensor of any shape, whose
    dimensions replace ``dim`` (``x[:, idx]``, ATen ``index.Tensor`` with one index)."""

    def __init__(self, dim: int, index: Tensor, name: str = "index", where: str = "") -> None:
        super().__init__(name, where)
        if index.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
            raise self.refuse(f"index tensor of dtype {index.dtype}")
        self.d, self.index = int(dim), index.long()

    def _at(self, shape: Sequence[int]) -> tuple[int, Tensor]:
        d = self.dim(self.d, len(shape))
        idx = self.index.flatten()
        if idx.numel() and not bool(((idx >= -shape[d]) & (idx < shape[d])).all()):
            raise self.refuse(f"index out of range for a dimension of size {shape[d]}")
        return d, idx % shape[d]

    def forward(self, x: Tensor) -> Tensor:
        d, idx = self._at(x.shape)
        out = x.index_select(d, idx.to(x.device))
        return out.reshape(*x.shape[:d], *self.index.shape, *x.shape[d + 1 :])

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        n, s = a.shape[:2]
        in_shape = self.in_shape(trace)
        d, idx = self._at((n, *in_shape))
        flat = a.reshape(n, s, *in_shape[: d - 1], idx.numel(), *in_shape[d:])
        a_in = a.new_zeros(n, s, *in_shape).index_add(d + 1, idx.to(a.device), flat)
        return a_in, self.no_bias(a)


class BoundSqueeze(ShapeOp):
    """``x.squeeze(dims)``: drops those of ``dims`` (default: every non-batch dimension) that
    have size 1. Never the batch dimension, whose size is the number of rows."""

    def __init__(
        self, dims: int | Sequence[int] | None = None, name: str = "squeeze", where: str = ""
    ) -> None:
        super().__init__(name, where)
        self.dims = (dims,) if isinstance(dims, int) else None if dims is None else tuple(dims)

    def forward(self, x: Tensor) -> Tensor:
        ndim = x.dim()
        dims = range(1, ndim) if self.dims is None else [self.dim(d, ndim) for d in self.dims]
        return x.squeeze(tuple(d for d in dims if x.shape[d] == 1))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        return a.reshape(*a.shape[:2], *self.in_shape(trace)), self.no_bias(a)


class BoundUnsqueeze(ShapeOp):
    """``x.unsqueeze(dim)`` after the batch dimension."""

    def __init__(self, dim: int, name: str = "unsqueeze", where: str = "") -> None:
        super().__init__(name, where)
        self.d = int(dim)

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(self.dim(self.d, x.dim() + 1))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        return a.reshape(*a.shape[:2], *self.in_shape(trace)), self.no_bias(a)


class BoundExpand(ShapeOp):
    """``x.expand(shape)`` (-1 keeps a size): repeats size-1 non-batch dimensions; new
    leading dimensions, which would precede the batch, are refused."""

    def __init__(self, shape: Sequence[int], name: str = "expand", where: str = "") -> None:
        super().__init__(name, where)
        self.shape = tuple(int(k) for k in shape)

    def _shape(self, shape: Sequence[int]) -> tuple[int, ...]:
        if len(self.shape) != len(shape):
            raise self.refuse(f"expand of a {len(shape)}-d tensor to {len(self.shape)} dims")
        out = tuple(k if t == -1 else t for k, t in zip(shape, self.shape, strict=True))
        if out[0] != shape[0]:
            raise self.refuse("the expand changes the batch dimension")
        return out

    def forward(self, x: Tensor) -> Tensor:
        return x.expand(self._shape(x.shape))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        n, s = a.shape[:2]
        return a.sum_to_size(n, s, *self.in_shape(trace)), self.no_bias(a)


class BoundPad(ShapeOp):
    """``F.pad(x, pad, value=value)`` in constant mode (ATen ``constant_pad_nd``): ``pad`` as
    F.pad takes it, (left, right) pairs from the last dimension back; negative entries crop."""

    def __init__(
        self, pad: Sequence[int], value: float = 0.0, name: str = "pad", where: str = ""
    ) -> None:
        super().__init__(name, where)
        if len(pad) % 2:
            raise self.refuse(f"pad {tuple(pad)} of odd length")
        self.pad, self.value = tuple(int(p) for p in pad), float(value)

    def _check(self, ndim: int) -> None:
        if len(self.pad) > 2 * (ndim - 1):
            raise self.refuse("the pad reaches the batch dimension")

    def forward(self, x: Tensor) -> Tensor:
        self._check(x.dim())
        return F.pad(x, self.pad, value=self.value)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        self._check(box.centre.dim())
        return Box(self.forward(box.centre), F.pad(box.radius, self.pad))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        in_shape = self.in_shape(trace)
        self._check(len(in_shape) + 1)
        a_in = F.pad(a, tuple(-p for p in self.pad))
        if self.value == 0.0:
            return a_in, self.no_bias(a)
        border = F.pad(a.new_zeros(1, *in_shape), self.pad, value=self.value)[0]
        return a_in, spec_sum(a, border)


class BoundSum(ShapeOp):
    """``x.sum(dims, keepdim)`` over non-batch dimensions."""

    mixes = True

    def __init__(
        self, dims: int | Sequence[int], keepdim: bool = False, name: str = "sum", where: str = ""
    ) -> None:
        super().__init__(name, where)
        self.dims = (dims,) if isinstance(dims, int) else tuple(int(d) for d in dims)
        self.keepdim = bool(keepdim)
        if not self.dims:
            raise self.refuse("a reduction over every dimension mixes the batch rows")

    def _dims(self, ndim: int) -> tuple[int, ...]:
        return tuple(sorted({self.dim(d, ndim) for d in self.dims}))

    def _scale(self, shape: Sequence[int], dims: tuple[int, ...]) -> float:
        return 1.0

    def forward(self, x: Tensor) -> Tensor:
        dims = self._dims(x.dim())
        return x.sum(dims, self.keepdim) * self._scale(x.shape, dims)

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        n, s = a.shape[:2]
        in_shape = self.in_shape(trace)
        dims = self._dims(len(in_shape) + 1)
        if not self.keepdim:
            for d in dims:  # increasing, so each lands where it was
                a = a.unsqueeze(d + 1)
        a_in = a.expand(n, s, *in_shape) * self._scale((n, *in_shape), dims)
        return a_in, self.no_bias(a)


class BoundMean(BoundSum):
    """``x.mean(dims, keepdim)`` over non-batch dimensions."""

    def __init__(
        self, dims: int | Sequence[int], keepdim: bool = False, name: str = "mean", where: str = ""
    ) -> None:
        super().__init__(dims, keepdim, name, where)

    def _scale(self, shape: Sequence[int], dims: tuple[int, ...]) -> float:
        count = 1
        for d in dims:
            count *= shape[d]
        return 1.0 / count


class MatmulSide(enum.Enum):
    """Where the constant matrix ``w`` stands: ``x @ w`` (RIGHT) or ``w @ x`` (LEFT)."""

    RIGHT = "right"
    LEFT = "left"


class BoundMatmulConst(ShapeOp):
    """``x @ w`` or ``w @ x`` with ``w`` a constant of at least 2 dims whose leading dims
    broadcast against ``x``'s non-batch ones (an ``nn.Linear`` without bias over the last dim of
    an N-d tensor is ``x @ W.T``). IBP: ``c @ w``, ``r @ |w|``; CROWN: the transposed product."""

    mixes = True

    def __init__(self, w: Tensor, side: MatmulSide, name: str = "matmul", where: str = "") -> None:
        super().__init__(name, where)
        if w.dim() < 2:
            raise self.refuse(f"constant of shape {tuple(w.shape)} (need a matrix)")
        self.w, self.side = w, MatmulSide(side)

    def _check(self, ndim: int) -> None:
        need = 2 if self.side is MatmulSide.RIGHT else 3  # LEFT: x is (N, ..., k, n)
        if ndim < need:
            raise self.refuse(f"{ndim}-d operand: the product would mix the batch rows")
        if self.w.dim() > ndim or (self.w.dim() == ndim > 2 and self.w.shape[0] != 1):
            raise self.refuse(f"constant of shape {tuple(self.w.shape)} varies per row")

    def _apply(self, x: Tensor, w: Tensor) -> Tensor:
        self._check(x.dim())
        return x @ w if self.side is MatmulSide.RIGHT else w @ x

    def forward(self, x: Tensor) -> Tensor:
        out = self._apply(x, self.w)
        if out.shape[0] != x.shape[0]:
            raise self.refuse("the product changes the batch dimension")
        return out

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return Box(self.forward(box.centre), self._apply(box.radius, self.w.abs()))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        n, s = a.shape[:2]
        in_shape = self.in_shape(trace)
        self._check(len(in_shape) + 1)
        wt = self.w.transpose(-1, -2)
        if self.w.dim() == len(in_shape) + 1 > 2:
            wt = wt[0]  # the shared leading 1 stands for the batch; ``a`` has (N, S) there
        a_in = a @ wt if self.side is MatmulSide.RIGHT else wt @ a
        return a_in.sum_to_size(n, s, *in_shape), self.no_bias(a)


class UpsampleMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"


class BoundUpsample(ShapeOp):
    """2-d upsampling as ATen runs it (``upsample_nearest2d.vec`` / ``upsample_bilinear2d.vec``
    with ``output_size`` or ``scale_factors``): nearest copies pixels, bilinear averages four
    with non-negative weights, so both are linear with ``|W| = W``; CROWN uses the adjoint
    (autograd's vector-Jacobian product)."""

    def __init__(
        self,
        mode: UpsampleMode,
        output_size: Sequence[int] | None = None,
        scale_factors: Sequence[float] | None = None,
        align_corners: bool = False,
        name: str = "upsample",
        where: str = "",
    ) -> None:
        super().__init__(name, where)
        if (output_size is None) == (scale_factors is None):
            raise self.refuse("give exactly one of output_size and scale_factors")
        self.mode = UpsampleMode(mode)
        self.mixes = self.mode is UpsampleMode.BILINEAR
        self.size = None if output_size is None else [int(k) for k in output_size]
        self.scales = None if scale_factors is None else [float(k) for k in scale_factors]
        self.align_corners = bool(align_corners)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise self.refuse(f"2-d upsampling of a {x.dim()}-d tensor")
        aten = torch.ops.aten
        if self.mode is UpsampleMode.NEAREST:
            return aten.upsample_nearest2d.vec(x, self.size, self.scales)
        if self.mode is UpsampleMode.NEAREST_EXACT:
            return aten._upsample_nearest_exact2d.vec(x, self.size, self.scales)
        return aten.upsample_bilinear2d.vec(x, self.size, self.align_corners, self.scales)

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        n, s = a.shape[:2]
        in_shape = self.in_shape(trace)
        _, vjp = torch.func.vjp(self.forward, a.new_zeros(n * s, *in_shape))
        (a_in,) = vjp(a.reshape(n * s, *a.shape[2:]))
        return a_in.reshape(n, s, *in_shape), self.no_bias(a)
