"""Affine layers: exact interval images via centre/radius (2.5, 2.6) and exact transposes."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import POINTWISE, BackwardOptions, BoundOp, Geometry, Trace, spec_sum
from .box import Box
from .errors import UnsupportedLayer, UnsupportedOp


def pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class LinearParams:
    """Stand-in for ``nn.Linear`` over given tensors (mip's affine layers, ``F.linear`` calls):
    the weights are read on every use, so gradients reach whoever owns them."""

    def __init__(self, weight: Tensor, bias: Tensor | None) -> None:
        self.weight, self.bias = weight, bias

    @property
    def out_features(self) -> int:
        return self.weight.shape[0]

    @property
    def in_features(self) -> int:
        return self.weight.shape[1]

    def __call__(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight, self.bias)


class BoundLinear(BoundOp):
    """``F.linear`` over the last dimension of a 2-d or N-d input (a Linear applied to every
    pixel of a 4-d tensor is the same map at every position)."""

    module: nn.Linear
    affine = True
    shared_rows = True
    mixes = True

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        w = self.module.weight
        return Box(F.linear(box.centre, w, self.module.bias), F.linear(box.radius, w.abs()))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        b = self.module.bias
        n, s = a.shape[:2]
        bias = (a @ b).reshape(n, s, -1).sum(2) if b is not None else a.new_zeros(n, s)
        return a @ self.module.weight, bias


DENSE_LIMIT = 1 << 22
"""Largest (out x in) dense matrix a convolution's back-substitution may build (16 MiB fp32)."""


class BoundConv2d(BoundOp):
    module: nn.Conv2d
    affine = True
    shared_rows = True
    mixes = True

    def __init__(self, module: nn.Conv2d) -> None:
        super().__init__(module)
        if module.padding_mode != "zeros":
            raise UnsupportedLayer(module, f"padding_mode={module.padding_mode!r}")
        if isinstance(module.padding, str):
            if module.padding != "valid":
                raise UnsupportedLayer(module, f"padding={module.padding!r}")
            self.padding = (0, 0)
        else:
            self.padding = pair(module.padding)

    def _conv(self, x: Tensor, w: Tensor, b: Tensor | None, padding: tuple[int, int]) -> Tensor:
        m = self.module
        return F.conv2d(x, w, b, m.stride, padding, m.dilation, m.groups)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        w, b = self.module.weight, self.module.bias
        return Box(
            self._conv(box.centre, w, b, self.padding),
            self._conv(box.radius, w.abs(), None, self.padding),
        )

    def interval_valid(self, box: Box) -> Box:
        w, b = self.module.weight, self.module.bias
        return Box(
            self._conv(box.centre, w, b, (0, 0)), self._conv(box.radius, w.abs(), None, (0, 0))
        )

    @property
    def geometry(self) -> Geometry | None:
        m = self.module
        if pair(m.dilation) != (1, 1):
            return None
        return Geometry(pair(m.kernel_size), pair(m.stride), self.padding, 0.0)

    def _dense(self, in_shape: torch.Size, like: Tensor) -> Tensor:
        """The convolution as a dense (out, in) matrix: one small GEMM per back-substitution
        step instead of a transposed convolution over every (row, spec) pair."""
        d_in = in_shape.numel()
        basis = torch.eye(d_in, dtype=like.dtype, device=like.device).reshape(d_in, *in_shape)
        return self._conv(basis, self.module.weight, None, self.padding).reshape(d_in, -1).T

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        m = self.module
        in_shape = self.pre(trace).centre.shape[1:]
        n, s = a.shape[:2]
        bias = spec_sum(a, m.bias[:, None, None]) if m.bias is not None else a.new_zeros(n, s)
        d_out = a[0, 0].numel()
        if in_shape.numel() * d_out <= DENSE_LIMIT and n * s > in_shape.numel():
            key = ("dense", id(self))
            dense = trace.get(key)
            if dense is None:
                dense = trace[key] = self._dense(in_shape, a)
            a_in = a.reshape(n * s, d_out) @ dense
            return a_in.reshape(n, s, *in_shape), bias
        flat = a.reshape(n * s, *a.shape[2:])
        out_hw = flat.shape[2:]
        k, st, d = pair(m.kernel_size), pair(m.stride), pair(m.dilation)
        extra = tuple(
            in_shape[1 + i]
            - ((out_hw[i] - 1) * st[i] - 2 * self.padding[i] + d[i] * (k[i] - 1) + 1)
            for i in range(2)
        )
        a_in = F.conv_transpose2d(flat, m.weight, None, st, self.padding, extra, m.groups, d)
        return a_in.reshape(n, s, *in_shape), bias


class BoundConvTranspose2d(BoundOp):
    """``F.conv_transpose2d`` (ATen ``convolution`` with ``transposed=True``); weight of shape
    (C_in, C_out / groups, kh, kw). Its adjoint is the convolution with the same weight and
    geometry, cropped to the input's size (``output_padding`` may leave extra rows)."""

    affine = True
    shared_rows = True
    mixes = True

    def __init__(
        self,
        weight: Tensor,
        bias: Tensor | None = None,
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        output_padding: int | tuple[int, int] = 0,
        groups: int = 1,
        dilation: int | tuple[int, int] = 1,
    ) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        if weight.dim() != 4:
            raise ValueError(f"ConvTranspose2d weight of shape {tuple(weight.shape)}")
        self.weight, self.bias = weight, bias
        self.stride, self.padding = pair(stride), pair(padding)
        self.output_padding, self.dilation = pair(output_padding), pair(dilation)
        self.groups = int(groups)

    def _conv_t(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return F.conv_transpose2d(
            x, w, b, self.stride, self.padding, self.output_padding, self.groups, self.dilation
        )

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_t(x, self.weight, self.bias)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return Box(self.forward(box.centre), self._conv_t(box.radius, self.weight.abs(), None))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        in_shape = self.pre(trace).centre.shape[1:]
        n, s = a.shape[:2]
        b = self.bias
        bias = spec_sum(a, b[:, None, None]) if b is not None else a.new_zeros(n, s)
        flat = a.reshape(n * s, *a.shape[2:])
        a_in = F.conv2d(
            flat, self.weight, None, self.stride, self.padding, self.dilation, self.groups
        )
        a_in = a_in[:, :, : in_shape[1], : in_shape[2]]
        return a_in.reshape(n, s, *in_shape), bias


class BoundBatchNorm(BoundOp):
    """BatchNorm in eval mode: a per-channel affine map with the running statistics."""

    module: nn.modules.batchnorm._BatchNorm
    affine = True
    shared_rows = True

    def __init__(self, module: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__(module)
        if not module.track_running_stats or module.running_var is None:
            raise UnsupportedLayer(module, "no running statistics (batch-dependent normalisation)")

    def _affine(self, ndim: int) -> tuple[Tensor, Tensor]:
        m = self.module
        scale = torch.rsqrt(m.running_var + m.eps)
        if m.weight is not None:
            scale = scale * m.weight
        shift = -m.running_mean * scale
        if m.bias is not None:
            shift = shift + m.bias
        view = (-1,) + (1,) * (ndim - 2)
        return scale.reshape(view), shift.reshape(view)

    def forward(self, x: Tensor) -> Tensor:
        scale, shift = self._affine(x.dim())
        return x * scale + shift

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        scale, shift = self._affine(box.centre.dim())
        return Box(box.centre * scale + shift, box.radius * scale.abs())

    def interval_valid(self, box: Box) -> Box:
        return self.interval(box)

    @property
    def geometry(self) -> Geometry | None:
        return POINTWISE if isinstance(self.module, nn.BatchNorm2d) else None

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        scale, shift = self._affine(a.dim() - 1)
        return a * scale, spec_sum(a, shift)


class BoundFlatten(BoundOp):
    module: nn.Flatten
    affine = True
    shared_rows = True

    def __init__(self, module: nn.Flatten) -> None:
        super().__init__(module)
        if module.start_dim != 1 or module.end_dim != -1:
            raise UnsupportedLayer(module, "only Flatten(start_dim=1, end_dim=-1)")

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return Box(box.centre.flatten(1), box.radius.flatten(1))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        in_shape = self.pre(trace).centre.shape[1:]
        return a.reshape(*a.shape[:2], *in_shape), a.new_zeros(a.shape[:2])


class BoundAvgPool2d(BoundOp):
    module: nn.AvgPool2d
    affine = True
    shared_rows = True
    mixes = True

    def __init__(self, module: nn.AvgPool2d) -> None:
        super().__init__(module)
        if module.divisor_override is not None:
            raise UnsupportedLayer(module, "divisor_override")

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return Box(self.module(box.centre), self.module(box.radius))

    def interval_valid(self, box: Box) -> Box:
        m = self.module
        pool = lambda x: F.avg_pool2d(x, m.kernel_size, m.stride, 0)  # noqa: E731
        return Box(pool(box.centre), pool(box.radius))

    @property
    def geometry(self) -> Geometry | None:
        m = self.module
        pad = pair(m.padding)
        if m.ceil_mode or (pad != (0, 0) and not m.count_include_pad):
            return None
        return Geometry(pair(m.kernel_size), pair(m.stride or m.kernel_size), pad, 0.0)

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        in_shape = self.pre(trace).centre.shape[1:]
        n, s = a.shape[:2]
        d_out = a[0, 0].numel()
        if in_shape.numel() * d_out <= DENSE_LIMIT and n * s > in_shape.numel():
            key = ("dense", id(self))
            dense = trace.get(key)
            if dense is None:  # the pooling as an (out, in) matrix, as for convolutions
                d_in = in_shape.numel()
                basis = torch.eye(d_in, dtype=a.dtype, device=a.device).reshape(d_in, *in_shape)
                dense = trace[key] = self.module(basis).reshape(d_in, -1).T
            a_in = a.reshape(n * s, d_out) @ dense
            return a_in.reshape(n, s, *in_shape), a.new_zeros(n, s)
        zeros = a.new_zeros(n * s, *in_shape)
        _, vjp = torch.func.vjp(self.module, zeros)
        (a_in,) = vjp(a.reshape(n * s, *a.shape[2:]))
        return a_in.reshape(n, s, *in_shape), a.new_zeros(n, s)


class BoundIdentity(BoundOp):
    """nn.Identity, and Dropout (bounds are always computed for the eval-mode network)."""

    affine = True
    shared_rows = True

    def forward(self, x: Tensor) -> Tensor:
        return x

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return box

    def interval_valid(self, box: Box) -> Box:
        return box

    @property
    def geometry(self) -> Geometry | None:
        return POINTWISE

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        return a, a.new_zeros(a.shape[:2])


Const = Callable[[], Tensor | float]
"""A constant operand, read when used (so a trained parameter is always current)."""


class BoundConstArith(BoundOp):
    """``x + c``, ``x - c``, ``c - x``, ``x * c``, ``x / c``, ``-x`` with ``c`` a constant of the
    graph (input normalisation, scaling): exact interval images, exact transposes.

    ``c`` may broadcast ``x`` to a larger shape (``x`` of shape (N, 1, H, W) times a (C, 1, 1)
    constant): a repeated input element's coefficients are summed back. A constant that varies
    along the batch dimension or adds dimensions before it is refused."""

    KINDS = ("add", "sub", "rsub", "mul", "div", "neg")
    affine = True
    shared_rows = True

    def __init__(self, kind: str, const: Const, name: str = "", where: str = "") -> None:
        super().__init__(None)  # type: ignore[arg-type]
        if kind not in self.KINDS:
            raise ValueError(kind)
        self.kind, self.const, self.name, self.where = kind, const, name, where

    def _c(self, x: Tensor) -> Tensor | float:
        c = self.const() if self.kind != "neg" else -1.0
        if isinstance(c, Tensor):
            if c.dim() > x.dim() or (c.dim() == x.dim() and c.shape[0] != 1):
                raise UnsupportedOp(
                    self.name, self.where, f"constant of shape {tuple(c.shape)} varies per row"
                )
            try:
                torch.broadcast_shapes(c.shape, x.shape)
            except RuntimeError:
                raise UnsupportedOp(
                    self.name,
                    self.where,
                    f"constant of shape {tuple(c.shape)} does not broadcast "
                    f"with the input {tuple(x.shape)}",
                ) from None
            if self.kind == "div" and not bool((c != 0).all()):
                raise UnsupportedOp(self.name, self.where, "division by a constant with zeros")
        elif self.kind == "div" and c == 0:
            raise UnsupportedOp(self.name, self.where, "division by zero")
        return c

    def forward(self, x: Tensor) -> Tensor:
        c, k = self._c(x), self.kind
        if k == "add":
            return x + c
        if k == "sub":
            return x - c
        if k == "rsub":
            return c - x
        if k == "div":
            return x / c
        return x * c  # mul, neg

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        c, k = self._c(box.centre), self.kind
        if k in ("add", "sub", "rsub"):
            centre = self.forward(box.centre)
            radius = box.radius
            if radius.shape != centre.shape:
                radius = radius.expand_as(centre).contiguous()
            return Box(centre, radius)
        mag = abs(c) if not isinstance(c, Tensor) else c.abs()
        if k == "div":
            return Box(box.centre / c, box.radius / mag)
        return Box(box.centre * c, box.radius * mag)  # mul, neg

    def interval_valid(self, box: Box) -> Box:
        return self.interval(box)

    @property
    def geometry(self) -> Geometry | None:
        """Pointwise when the constant is a scalar or per channel (no spatial variation)."""
        c = self.const() if self.kind != "neg" else -1.0
        if not isinstance(c, Tensor) or c.numel() == 1:
            return POINTWISE
        if c.dim() >= 2 and c.shape[-1] == 1 and c.shape[-2] == 1:
            return POINTWISE
        return None

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        x = self.pre(trace).centre
        c, k = self._c(x), self.kind
        if isinstance(c, Tensor) and c.dim() == x.dim():
            c = c[0]  # drop the broadcast batch dim: ``a`` is (N, S, *sample)
        n, s = a.shape[:2]
        zero = a.new_zeros(n, s)

        def back(a_in: Tensor) -> Tensor:  # sum over the positions a broadcast repeated
            return a_in.sum_to_size(n, s, *x.shape[1:])

        if k in ("add", "sub"):
            shift = c if k == "add" else -c
            if isinstance(shift, Tensor):
                return back(a), spec_sum(a, shift)
            return a, a.flatten(2).sum(2) * shift
        if k == "rsub":
            bias = spec_sum(a, c) if isinstance(c, Tensor) else a.flatten(2).sum(2) * c
            return back(-a), bias
        if k == "div":
            return back(a / c), zero
        return back(a * c), zero


class BoundReshape(BoundOp):
    """view / reshape / flatten that keeps the batch dimension first (checked when run): a
    pure re-indexing of each row, so boxes reshape and coefficients reshape back.

    ``fn(x, shapes)`` applies the op to a tensor; ``shapes`` maps graph node indices to the
    runtime shapes of the tensors a size argument was read from (``x.size(0)``)."""

    affine = True
    shared_rows = True

    def __init__(
        self,
        fn: Callable[[Tensor, dict[int, torch.Size]], Tensor],
        sources: tuple[int, ...],
        name: str = "reshape",
        where: str = "",
    ) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.fn, self.sources, self.name, self.where = fn, sources, name, where

    def _apply(self, x: Tensor, shapes: dict[int, torch.Size]) -> Tensor:
        out = self.fn(x, shapes)
        if out.dim() == 0 or out.shape[0] != x.shape[0] or out.numel() != x.numel():
            raise UnsupportedOp(
                self.name,
                self.where,
                f"reshape {tuple(x.shape)} -> {tuple(out.shape)} does not keep the batch dimension",
            )
        return out

    def _shapes(self, ts: Sequence[Tensor]) -> dict[int, torch.Size]:
        return {i: t.shape for i, t in zip(self.sources, ts[1:], strict=True)}

    def forward_all(self, xs: Sequence[Tensor]) -> Tensor:
        return self._apply(xs[0], self._shapes(xs))

    def forward(self, x: Tensor) -> Tensor:
        return self._apply(x, {})

    def interval_all(self, boxes: Sequence[Box], trace: Trace | None = None) -> Box:
        shapes = self._shapes([b.centre for b in boxes])
        if trace is not None:
            trace[id(self)] = boxes[0]
        box = boxes[0]
        return Box(self._apply(box.centre, shapes), self._apply(box.radius, shapes))

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return self.interval_all([box], trace)

    def backward_all(
        self, a: Tensor, trace: Trace, opts: BackwardOptions
    ) -> tuple[list[Tensor | None], Tensor]:
        a_in, bias = self.backward(a, trace, opts)
        return [a_in] + [None] * len(self.sources), bias

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        in_shape = self.pre(trace).centre.shape[1:]
        return a.reshape(*a.shape[:2], *in_shape), a.new_zeros(a.shape[:2])
