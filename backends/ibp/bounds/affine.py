"""Affine layers: exact interval images via centre/radius (2.5, 2.6) and exact transposes."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .base import POINTWISE, BackwardOptions, BoundOp, Geometry, Trace, spec_sum
from .box import Box
from .errors import UnsupportedLayer


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class BoundLinear(BoundOp):
    module: nn.Linear

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        w = self.module.weight
        return Box(F.linear(box.centre, w, self.module.bias), F.linear(box.radius, w.abs()))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        b = self.module.bias
        bias = a @ b if b is not None else a.new_zeros(a.shape[:2])
        return a @ self.module.weight, bias


class BoundConv2d(BoundOp):
    module: nn.Conv2d

    def __init__(self, module: nn.Conv2d) -> None:
        super().__init__(module)
        if module.padding_mode != "zeros":
            raise UnsupportedLayer(module, f"padding_mode={module.padding_mode!r}")
        if isinstance(module.padding, str):
            if module.padding != "valid":
                raise UnsupportedLayer(module, f"padding={module.padding!r}")
            self.padding = (0, 0)
        else:
            self.padding = _pair(module.padding)

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
        if _pair(m.dilation) != (1, 1):
            return None
        return Geometry(_pair(m.kernel_size), _pair(m.stride), self.padding, 0.0)

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        m = self.module
        in_shape = self.pre(trace).centre.shape[1:]
        n, s = a.shape[:2]
        flat = a.reshape(n * s, *a.shape[2:])
        out_hw = flat.shape[2:]
        k, st, d = _pair(m.kernel_size), _pair(m.stride), _pair(m.dilation)
        extra = tuple(
            in_shape[1 + i]
            - ((out_hw[i] - 1) * st[i] - 2 * self.padding[i] + d[i] * (k[i] - 1) + 1)
            for i in range(2)
        )
        a_in = F.conv_transpose2d(flat, m.weight, None, st, self.padding, extra, m.groups, d)
        bias = spec_sum(a, m.bias[:, None, None]) if m.bias is not None else a.new_zeros(n, s)
        return a_in.reshape(n, s, *in_shape), bias


class BoundBatchNorm(BoundOp):
    """BatchNorm in eval mode: a per-channel affine map with the running statistics."""

    module: nn.modules.batchnorm._BatchNorm

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
        pad = _pair(m.padding)
        if m.ceil_mode or (pad != (0, 0) and not m.count_include_pad):
            return None
        return Geometry(_pair(m.kernel_size), _pair(m.stride or m.kernel_size), pad, 0.0)

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        in_shape = self.pre(trace).centre.shape[1:]
        n, s = a.shape[:2]
        zeros = a.new_zeros(n * s, *in_shape)
        _, vjp = torch.func.vjp(self.module, zeros)
        (a_in,) = vjp(a.reshape(n * s, *a.shape[2:]))
        return a_in.reshape(n, s, *in_shape), a.new_zeros(n, s)


class BoundIdentity(BoundOp):
    """nn.Identity, and Dropout (bounds are always computed for the eval-mode network)."""

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
