"""Piecewise-linear layers: ReLU, MaxPool2d and max over dims, monotone for IBP (2.7, 2.8),
relaxed for CROWN (other activations: :mod:`.activations`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .affine import pair
from .base import POINTWISE, BackwardOptions, BoundOp, Geometry, LowerSlope, Trace, spec_sum
from .box import Box
from .errors import UnsupportedLayer, UnsupportedOp


class BoundReLU(BoundOp):
    nonlinear = True
    exact_image = True
    shared_rows = True

    def unstable(self, pre: Box) -> Tensor | None:
        return (pre.lo < 0) & (pre.hi > 0)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        lo = torch.sub(box.centre, box.radius).clamp_(min=0)
        hi = torch.add(box.centre, box.radius).clamp_(min=0)
        return Box(torch.add(hi, lo).mul_(0.5), torch.sub(hi, lo).mul_(0.5))

    def interval_valid(self, box: Box) -> Box:
        return self.interval(box)

    @property
    def geometry(self) -> Geometry | None:
        return POINTWISE

    def relaxation(self, pre: Box, opts: BackwardOptions) -> tuple[Tensor, Tensor, Tensor]:
        """Slopes/intercept: ``lo_slope * z <= relu(z) <= up_slope * z + up_icpt`` on [l, u]."""
        lo, hi = pre.lo, pre.hi
        active, inactive = lo >= 0, hi <= 0
        unstable = ~(active | inactive)
        width = torch.where(unstable, hi - lo, torch.ones_like(hi))
        up_slope = torch.where(unstable, hi / width, active.to(hi.dtype))
        up_icpt = torch.where(unstable, -lo * hi / width, torch.zeros_like(hi))
        alpha = opts.alphas.get(id(self)) if opts.alphas is not None else None
        if alpha is not None:  # (N, *shape), or (N, S, *shape): one slope per spec
            if alpha.dim() > hi.dim():
                unstable, active = unstable.unsqueeze(1), active.unsqueeze(1)
            return (
                torch.where(unstable, alpha.clamp(0.0, 1.0), active.to(hi.dtype)),
                up_slope,
                up_icpt,
            )
        if opts.lower_slope is LowerSlope.ADAPTIVE:
            lo_unstable = (hi > -lo).to(hi.dtype)
        else:
            lo_unstable = torch.zeros_like(hi)
        lo_slope = torch.where(unstable, lo_unstable, active.to(hi.dtype))
        return lo_slope, up_slope, up_icpt

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        lo_slope, up_slope, up_icpt = self.relaxation(self.pre(trace), opts)
        lo = lo_slope if lo_slope.dim() == a.dim() else lo_slope.unsqueeze(1)
        return _relu_lines(a, lo, up_slope.unsqueeze(1), up_icpt.unsqueeze(1))


def _relu_lines(a: Tensor, lo: Tensor, up: Tensor, up_icpt: Tensor) -> tuple[Tensor, Tensor]:
    """``A_in = pos * lo + neg * up`` (one of the two products is 0 per entry, so the fused
    multiply-add gives the same values) and the bias of the upper lines' intercepts; ``a``
    may be shared by every row (leading dim 1): the slopes broadcast it."""
    neg = a.clamp(max=0)
    a_in = torch.mul(a.clamp(min=0), lo).addcmul_(neg, up)
    return a_in, spec_sum(neg, up_icpt)


class BoundMaxPool2d(BoundOp):
    """Max over windows. CROWN: ``max >= z_j*`` with j* the window's best lower bound; above,
    ``max <= z_j*`` when j* dominates the window (then exact), else the constant max upper bound.
    """

    module: nn.MaxPool2d
    nonlinear = True

    def __init__(self, module: nn.MaxPool2d) -> None:
        super().__init__(module)
        if module.ceil_mode or pair(module.dilation) != (1, 1):
            raise UnsupportedLayer(module, "ceil_mode or dilation")
        self.k = pair(module.kernel_size)
        self.s = pair(module.stride or module.kernel_size)
        self.p = pair(module.padding)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return Box.from_bounds(self.module(box.lo), self.module(box.hi))

    def interval_valid(self, box: Box) -> Box:
        pool = lambda x: F.max_pool2d(x, self.k, self.s, 0)  # noqa: E731
        return Box.from_bounds(pool(box.lo), pool(box.hi))

    @property
    def geometry(self) -> Geometry | None:
        return Geometry(self.k, self.s, self.p, float("-inf"))

    def _windows(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> (N, C, k*k, L) windows, padded with -inf like max_pool2d."""
        n, c = x.shape[:2]
        xp = F.pad(x, (self.p[1], self.p[1], self.p[0], self.p[0]), value=float("-inf"))
        return F.unfold(xp, self.k, stride=self.s).reshape(n, c, self.k[0] * self.k[1], -1)

    def _positions(self, h: int, w: int, device: torch.device) -> tuple[Tensor, Tensor]:
        """Flat indices into the padded input: of each window's top-left element (L,) and of
        each element relative to it (K,), in ``F.unfold``'s orders."""
        hp, wp = h + 2 * self.p[0], w + 2 * self.p[1]
        rows = torch.arange(0, hp - self.k[0] + 1, self.s[0], device=device)
        cols = torch.arange(0, wp - self.k[1] + 1, self.s[1], device=device)
        base = (rows[:, None] * wp + cols[None, :]).flatten()
        ky = torch.arange(self.k[0], device=device)
        kx = torch.arange(self.k[1], device=device)
        return base, (ky[:, None] * wp + kx[None, :]).flatten()

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        pre = self.pre(trace)
        n, c, h, w = pre.centre.shape
        # windows as (N, C, L, K): reductions over the last, contiguous dim
        lo_w = self._windows(pre.lo).transpose(2, 3).contiguous()
        hi_w = self._windows(pre.hi).transpose(2, 3).contiguous()
        best = lo_w.argmax(dim=3, keepdim=True)  # (N, C, L, 1)
        best_lo = lo_w.gather(3, best).squeeze(3)
        other_hi = hi_w.scatter(3, best, float("-inf")).amax(dim=3)
        dominated = best_lo >= other_hi  # (N, C, L): max equals z_j* on the whole box
        upper = hi_w.amax(dim=3)
        s = a.shape[1]
        coef = a.reshape(n, s, c, -1)
        keep = (coef >= 0) | dominated.unsqueeze(1)
        lin = torch.where(keep, coef, torch.zeros_like(coef))
        const = torch.where(keep, torch.zeros_like(coef), coef * upper.unsqueeze(1))
        # each window's coefficient goes to its best element: one scatter-add over the padded
        # input (windows that overlap add up, as F.fold would)
        base, offset = self._positions(h, w, a.device)
        pos = (base[None, None, :] + offset[best.squeeze(3)]).unsqueeze(1).expand_as(lin)
        hp, wp = h + 2 * self.p[0], w + 2 * self.p[1]
        a_in = lin.new_zeros(n, s, c, hp * wp).scatter_add_(3, pos, lin)
        a_in = a_in.reshape(n, s, c, hp, wp)[
            ..., self.p[0] : self.p[0] + h, self.p[1] : self.p[1] + w
        ]
        return a_in, const.flatten(2).sum(dim=2)


class BoundAmax(BoundOp):
    """``amax(x, dims, keepdim)`` over non-batch dims (``torch.max(x, dim)``'s values).
    CROWN as for max-pooling: ``max >= z_j*`` with j* the best lower bound over the reduced
    elements; above, ``z_j*`` where j* dominates them on the box (then exact), else the
    constant upper bound."""

    nonlinear = True

    def __init__(
        self, dims: int | tuple[int, ...], keepdim: bool, name: str = "amax", where: str = ""
    ) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.dims = (dims,) if isinstance(dims, int) else tuple(int(d) for d in dims)
        self.keepdim, self.name, self.where = bool(keepdim), name, where
        if not self.dims:
            raise UnsupportedOp(name, where, "a max over every dimension mixes the batch rows")

    def _dims(self, ndim: int) -> tuple[int, ...]:
        dims = tuple(sorted({d % ndim for d in self.dims}))
        if 0 in dims:
            raise UnsupportedOp(self.name, self.where, "a max over the batch dimension")
        return dims

    def forward(self, x: Tensor) -> Tensor:
        return x.amax(self._dims(x.dim()), self.keepdim)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        dims = self._dims(box.centre.dim())
        return Box.from_bounds(box.lo.amax(dims, self.keepdim), box.hi.amax(dims, self.keepdim))

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        pre = self.pre(trace)
        ndim = pre.centre.dim()
        dims = self._dims(ndim)
        kept = [d for d in range(ndim) if d not in dims]
        order = kept + list(dims)  # reduced dims last, flattened into one
        lo_w = pre.lo.permute(order).flatten(len(kept))
        hi_w = pre.hi.permute(order).flatten(len(kept))
        best = lo_w.argmax(dim=-1, keepdim=True)
        onehot = torch.zeros_like(lo_w).scatter_(-1, best, 1.0)
        best_lo = lo_w.gather(-1, best).squeeze(-1)
        other_hi = hi_w.masked_fill(onehot.bool(), float("-inf")).amax(dim=-1)
        dominated = best_lo >= other_hi  # max equals z_j* on the whole box
        upper = hi_w.amax(dim=-1)
        n, s = a.shape[:2]
        coef = a.reshape(n, s, *upper.shape[1:])  # drops kept size-1 dims of keepdim
        keep = (coef >= 0) | dominated.unsqueeze(1)
        lin = torch.where(keep, coef, torch.zeros_like(coef))
        const = torch.where(keep, torch.zeros_like(coef), coef * upper.unsqueeze(1))
        cols = onehot.unsqueeze(1) * lin.unsqueeze(-1)  # (N, S, *kept, R)
        red_shape = [pre.centre.shape[d] for d in dims]
        cols = cols.reshape(n, s, *upper.shape[1:], *red_shape)
        inverse = [0] * ndim
        for i, d in enumerate(order):
            inverse[d] = i
        a_in = cols.permute(0, 1, *(i + 1 for i in inverse[1:]))
        return a_in, const.reshape(n, s, -1).sum(dim=2)
