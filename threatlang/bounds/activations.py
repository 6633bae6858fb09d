"""Elementwise activations beyond ReLU: LeakyReLU, abs, clamp/Hardtanh, sigmoid, tanh.

Each op is bounded by IBP through the exact image of the input box, and relaxed for CROWN by
two lines per neuron, ``lo_slope * z + lo_icpt <= f(z) <= up_slope * z + up_icpt`` on the
neuron's input interval ``[l, u]``:

* piecewise-linear ops (LeakyReLU of any slope, abs, clamp with one or two kinks): the chord
  on the side where ``f`` is convex (concave), a line through the kink on the other, as CROWN
  does for ReLU (Zhang et al. 2018, sec. 3.2). ``LowerSlope.ZERO`` takes the kink line that
  attains ``f``'s range on ``[l, u]``, so a relaxed layer concretises no looser than IBP;
  ``LowerSlope.ADAPTIVE`` takes the one of smaller area (CROWN's heuristic);
* S-shaped ops (sigmoid, tanh): chord and midpoint tangent where ``[l, u]`` is on one side of
  the inflection point, and where it crosses it the chord or the tangent through the far
  endpoint (Zhang et al. 2018, sec. 3.3 and Table 1; auto_LiRPA's ``BoundSShaped``, which
  pre-computes the tangent points that are found here by bisection).

alpha-CROWN optimises ReLU slopes only; these relaxations are fixed (sound either way).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from .base import POINTWISE, BackwardOptions, BoundOp, Geometry, LowerSlope, Trace, spec_sum
from .box import Box


class Relaxation(NamedTuple):
    """``lo_slope * z + lo_icpt <= f(z) <= up_slope * z + up_icpt`` per neuron (N, *shape)."""

    lo_slope: Tensor
    lo_icpt: Tensor
    up_slope: Tensor
    up_icpt: Tensor


def relaxed_backward(a: Tensor, r: Relaxation) -> tuple[Tensor, Tensor]:
    """Carry ``A`` (N, S, *shape) through a relaxed elementwise op: positive coefficients take
    the lower line, negative ones the upper line."""
    lo_slope, lo_icpt, up_slope, up_icpt = (t.unsqueeze(1) for t in r)
    pos, neg = a.clamp(min=0), a.clamp(max=0)
    a_in = torch.mul(pos, lo_slope).addcmul_(neg, up_slope)  # the same values, one pass less
    return a_in, spec_sum(pos, lo_icpt) + spec_sum(neg, up_icpt)


class BoundElementwise(BoundOp):
    """An elementwise nonlinear op: exact IBP image, CROWN relaxation from :meth:`relax`."""

    nonlinear = True
    exact_image = True

    def __init__(self, name: str = "", where: str = "") -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.name, self.where = name, where

    @abc.abstractmethod
    def forward(self, x: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def relax(self, lo: Tensor, hi: Tensor, adaptive: bool) -> Relaxation:
        """Lines bounding the op on ``[lo, hi]`` per neuron."""

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        """Monotone non-decreasing ops; others override."""
        return Box.from_bounds(self.forward(box.lo), self.forward(box.hi))

    def interval_valid(self, box: Box) -> Box:
        return self.interval(box)

    @property
    def geometry(self) -> Geometry | None:
        return POINTWISE

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        adaptive = opts.lower_slope is LowerSlope.ADAPTIVE
        key = ("relax", id(self), adaptive)  # one relaxation per pass, reused by every spec
        r = trace.get(key)
        if r is None:
            pre = self.pre(trace)
            r = trace[key] = self.relax(pre.lo, pre.hi, adaptive)
        return relaxed_backward(a, Relaxation(*r))


# --- piecewise-linear ops ---------------------------------------------------------------------
def _line(slope: Tensor | float, x: Tensor | float, y: Tensor | float, like: Tensor):
    """(slope, intercept) tensors of the line of ``slope`` through ``(x, y)``."""
    s = torch.as_tensor(slope, dtype=like.dtype, device=like.device).expand_as(like)
    return s, y - s * x


def kink_relaxation(
    lo: Tensor, hi: Tensor, c: float, yc: float, sl: float, sr: float, adaptive: bool
) -> Relaxation:
    """Lines for ``f(z) = yc + sl (z - c)`` left of ``c``, ``yc + sr (z - c)`` right of it.

    Off the kink ``f`` is its own relaxation; across it, the chord bounds ``f`` on its convex
    side (above when ``sl <= sr``) and a line through the kink with a slope between ``sl`` and
    ``sr`` on the other (any such slope is sound)."""
    left, right = hi <= c, lo >= c
    cross = ~(left | right)
    width = torch.where(cross, hi - lo, torch.ones_like(hi))
    f_lo, f_hi = yc + sl * (lo - c), yc + sr * (hi - c)
    chord = (sr * (hi - c) + sl * (c - lo)) / width
    chord_icpt = (f_lo * hi - f_hi * lo) / width  # no cancellation against chord * hi
    if adaptive:  # smaller area between f and the line: the side where [l, u] extends further
        k = torch.where(hi - c > c - lo, sr, sl).to(hi.dtype)
    else:  # the line through the kink that attains f's range on [l, u] (IBP's bound)
        k = torch.full_like(hi, min(max(0.0, min(sl, sr)), max(sl, sr)))
    kink = _line(k, c, yc, hi)
    chord_line = (chord, chord_icpt)
    lower, upper = (kink, chord_line) if sl <= sr else (chord_line, kink)
    s_left, i_left = _line(sl, c, yc, hi)
    s_right, i_right = _line(sr, c, yc, hi)

    def pick(line: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        s = torch.where(left, s_left, torch.where(right, s_right, line[0]))
        i = torch.where(left, i_left, torch.where(right, i_right, line[1]))
        return s, i

    return Relaxation(*pick(lower), *pick(upper))


class BoundKink(BoundElementwise):
    """A two-piece linear function with its kink at ``(c, yc)`` and slopes ``sl``, ``sr``."""

    c: float = 0.0
    yc: float = 0.0
    sl: float = 0.0
    sr: float = 1.0

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        """Extremes of a two-piece linear function are at the endpoints or the kink."""
        lo, hi = box.lo, box.hi
        f_lo, f_hi = self.forward(lo), self.forward(hi)
        low, high = torch.minimum(f_lo, f_hi), torch.maximum(f_lo, f_hi)
        cross = (lo < self.c) & (hi > self.c)
        low = torch.where(cross, low.clamp(max=self.yc), low)
        high = torch.where(cross, high.clamp(min=self.yc), high)
        return Box.from_bounds(low, high)

    def relax(self, lo: Tensor, hi: Tensor, adaptive: bool) -> Relaxation:
        return kink_relaxation(lo, hi, self.c, self.yc, self.sl, self.sr, adaptive)

    def unstable(self, pre: Box) -> Tensor | None:
        return (pre.lo < self.c) & (pre.hi > self.c)


class BoundLeakyReLU(BoundKink):
    """``leaky_relu(z, slope)``: ``z`` for ``z >= 0``, ``slope * z`` below; any real slope
    (convex for ``slope <= 1``, concave above, not monotone below 0)."""

    def __init__(self, slope: float, name: str = "leaky_relu", where: str = "") -> None:
        super().__init__(name, where)
        self.sl = float(slope)

    def forward(self, x: Tensor) -> Tensor:
        return torch.nn.functional.leaky_relu(x, self.sl)


class BoundAbs(BoundKink):
    """``|z|``: convex, kink at 0 with slopes -1 and 1."""

    sl = -1.0

    def __init__(self, name: str = "abs", where: str = "") -> None:
        super().__init__(name, where)

    def forward(self, x: Tensor) -> Tensor:
        return x.abs()


class BoundClamp(BoundElementwise):
    """``clamp(z, lo, hi)`` with either bound optional (Hardtanh is ``clamp(z, -1, 1)``, ReLU6
    ``clamp(z, 0, 6)``); as torch, ``lo > hi`` gives ``hi`` everywhere."""

    def __init__(
        self, lo: float | None, hi: float | None, name: str = "clamp", where: str = ""
    ) -> None:
        super().__init__(name, where)
        if lo is None and hi is None:
            raise ValueError("clamp needs a lower or an upper bound")
        if lo is not None and hi is not None and lo > hi:
            lo = hi
        self.lo = None if lo is None else float(lo)
        self.hi = None if hi is None else float(hi)

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x, self.lo, self.hi)

    def unstable(self, pre: Box) -> Tensor | None:
        out = torch.zeros_like(pre.lo, dtype=torch.bool)
        for k in (self.lo, self.hi):
            if k is not None:
                out |= (pre.lo < k) & (pre.hi > k)
        return out

    def relax(self, lo: Tensor, hi: Tensor, adaptive: bool) -> Relaxation:
        floor, ceil = self.lo, self.hi
        if ceil is None:
            return kink_relaxation(lo, hi, floor, floor, 0.0, 1.0, adaptive)
        if floor is None:
            return kink_relaxation(lo, hi, ceil, ceil, 1.0, 0.0, adaptive)
        at_floor = kink_relaxation(lo, hi, floor, floor, 0.0, 1.0, adaptive)  # hi <= ceil
        at_ceil = kink_relaxation(lo, hi, ceil, ceil, 1.0, 0.0, adaptive)  # lo >= floor
        # across both kinks: lower line through (floor, floor), upper through (ceil, ceil), each
        # with a slope between 0 and the one that meets the other flat piece at the box's end
        rise = ceil - floor
        a_max = rise / (hi - floor).clamp(min=rise if rise > 0 else 1.0)
        b_max = rise / (ceil - lo).clamp(min=rise if rise > 0 else 1.0)
        if adaptive:
            a = torch.where(hi - floor > floor - lo, a_max, torch.zeros_like(a_max))
            b = torch.where(ceil - lo > hi - ceil, b_max, torch.zeros_like(b_max))
        else:
            a, b = torch.zeros_like(hi), torch.zeros_like(hi)
        both = Relaxation(*_line(a, floor, floor, hi), *_line(b, ceil, ceil, hi))
        first, second = hi <= ceil, lo >= floor
        return Relaxation(
            *(
                torch.where(first, p, torch.where(second, q, r))
                for p, q, r in zip(at_floor, at_ceil, both, strict=True)
            )
        )


# --- S-shaped ops -------------------------------------------------------------------------
def _bisect(
    feasible: Callable[[Tensor], Tensor], good: Tensor, bad: Tensor, steps: int = 60
) -> Tensor:
    """Per neuron, a point next to the boundary between ``good`` (feasible) and ``bad`` on a
    monotone feasibility predicate; the returned point is always feasible."""
    for _ in range(steps):
        mid = (good + bad) * 0.5
        ok = feasible(mid)
        good, bad = torch.where(ok, mid, good), torch.where(ok, bad, mid)
    return good


def s_shaped_relaxation(
    lo: Tensor, hi: Tensor, f: Callable[[Tensor], Tensor], df: Callable[[Tensor], Tensor]
) -> Relaxation:
    """CROWN's lines for an increasing function convex below 0 and concave above it.

    Computed in float64 and widened by a few units of the working precision, so rounding the
    lines back cannot cut into ``f``."""
    dtype = hi.dtype
    a, b = lo.double(), hi.double()  # the interval [a, b] per neuron
    tiny = (b - a) < 1e-6  # constant lines f(l) <= f <= f(u): exact enough, no cancellation
    f_l, f_u = f(a), f(b)
    k = (f_u - f_l) / torch.where(tiny, torch.ones_like(b), b - a)

    def tangent(d: Tensor) -> tuple[Tensor, Tensor]:
        s = df(d)
        return s, f(d) - s * d

    chord = (k, f_l - k * a)
    mid = tangent((a + b) * 0.5)
    neg, pos = b <= 0, a >= 0
    cross = ~(neg | pos)
    # across 0: the chord where it stays on the right side of f, else the tangent through the
    # far endpoint: upper touches at d in [0, b] and passes above (a, f(a)), lower symmetric
    zero = torch.zeros_like(b)
    d_up = _bisect(lambda d: f(d) + df(d) * (a - d) >= f_l, torch.where(cross, b, zero), zero)
    d_lo = _bisect(lambda d: f(d) + df(d) * (b - d) <= f_u, torch.where(cross, a, zero), zero)
    up_cross = _where(df(b) >= k, chord, tangent(d_up))
    lo_cross = _where(df(a) >= k, chord, tangent(d_lo))
    lower = _where(neg, mid, _where(pos, chord, lo_cross))
    upper = _where(neg, chord, _where(pos, mid, up_cross))
    flat = torch.zeros_like(b)
    lower = _where(tiny, (flat, f_l), lower)
    upper = _where(tiny, (flat, f_u), upper)
    eps = 4 * torch.finfo(dtype).eps
    reach = torch.maximum(a.abs(), b.abs())
    slack_lo = eps * (1 + lower[0].abs() * reach + lower[1].abs())
    slack_up = eps * (1 + upper[0].abs() * reach + upper[1].abs())
    out = (lower[0], lower[1] - slack_lo, upper[0], upper[1] + slack_up)
    return Relaxation(*(t.to(dtype) for t in out))


def _where(
    mask: Tensor, a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]
) -> tuple[Tensor, Tensor]:
    return torch.where(mask, a[0], b[0]), torch.where(mask, a[1], b[1])


class BoundSShaped(BoundElementwise):
    """Sigmoid-like: increasing, convex below 0, concave above (every neuron is relaxed, so
    CROWN tightens every input neuron)."""

    @staticmethod
    @abc.abstractmethod
    def derivative(x: Tensor) -> Tensor: ...

    def relax(self, lo: Tensor, hi: Tensor, adaptive: bool) -> Relaxation:
        return s_shaped_relaxation(lo, hi, self.forward, self.derivative)


class BoundSigmoid(BoundSShaped):
    def __init__(self, name: str = "sigmoid", where: str = "") -> None:
        super().__init__(name, where)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sigmoid(x)

    @staticmethod
    def derivative(x: Tensor) -> Tensor:
        s = torch.sigmoid(x)
        return s * (1 - s)


class BoundTanh(BoundSShaped):
    def __init__(self, name: str = "tanh", where: str = "") -> None:
        super().__init__(name, where)

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x)

    @staticmethod
    def derivative(x: Tensor) -> Tensor:
        return 1 - torch.tanh(x) ** 2
