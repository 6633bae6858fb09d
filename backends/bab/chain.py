"""A network that is a chain of affine maps and ReLUs (ACAS Xu: 5 -> 6 x 50 -> 5), bounded by
a lean batched CROWN for input splitting.

Input-split branch and bound bounds tens of thousands of small boxes of a low-dimensional
input, and nothing else: no ReLU splits, no per-op trace. Collapsing each run of affine ops
into one matrix, and back-substituting the rows [W; -W] of every layer at once through plain
matrix products, bounds a box about ten times faster than the general engine (`adapter.py`),
with the same relaxation (CROWN, adaptive lower slopes, intermediate bounds by CROWN intersected
with IBP), in float64. `ReluChain.of` returns None for anything else; the search then uses the
general engine.

When every ReLU is stable on a box the network is affine there and CROWN's bound of each row
is its exact minimum: `ChainBounds.bias` with `a_in` is that affine map, which
`input_split.exact_decide` uses to decide the box without splitting further.
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor

from threatlang.bounds.nonlinear import BoundReLU

DTYPE = torch.float64
#: the collapsed chain must reproduce the engine's forward pass to this relative error
#: (it is the same arithmetic regrouped; a larger gap means the chain is not what we think)
AGREEMENT = 1e-9
#: above this share of unstable neurons in a layer, CROWN bounds every row densely (gathering
#: the rows would cost more than it saves)
DENSE_SHARE = 0.5


@attrs.frozen(eq=False)
class ChainBounds:
    """CROWN bounds of `C @ y` for N boxes."""

    lower: Tensor  # (N, S)
    a_in: Tensor  # (N, S, d): lower >= a_in . x + bias on the box (tight at a corner)
    bias: Tensor  # (N, S)
    pre: tuple[tuple[Tensor, Tensor], ...]  # per ReLU layer: (lo, hi) of its input, (N, n_l)
    stable: Tensor  # (N,) bool: no ReLU is unstable (the network is affine on the box)


@attrs.frozen(eq=False)
class ReluChain:
    """`y = W_L relu(... relu(W_1 x + b_1) ...) + b_L` as float64 matrices."""

    weights: tuple[Tensor, ...]  # (out, in) per affine map, L = ReLU layers + 1 of them
    biases: tuple[Tensor, ...]

    @classmethod
    def of(cls, net) -> ReluChain | None:
        """The chain of an `EngineNet` whose ops are affine ops and ReLUs alternating (runs of
        affine ops collapsed), or None when the network is anything else."""
        groups: list[list] = [[]]
        for op in net.ops:
            if isinstance(op, BoundReLU):
                groups.append([])
            elif getattr(op, "affine", False):
                groups[-1].append(op)
            else:
                return None
        if len(groups) < 2:
            return None
        shape = tuple(net.input_shape)
        weights, biases = [], []
        with torch.no_grad():
            for group in groups:
                d = weights[-1].shape[0] if weights else int(torch.tensor(shape).prod())
                basis = torch.cat([torch.zeros(1, d, dtype=DTYPE), torch.eye(d, dtype=DTYPE)])
                x = basis.reshape(-1, *shape) if not weights else basis
                for op in group:
                    x = op.forward(x)
                x = x.flatten(1)
                biases.append(x[0].clone())
                weights.append((x[1:] - x[0]).T.contiguous())
        chain = cls(tuple(weights), tuple(biases))
        return chain if chain._agrees(net) else None

    def _agrees(self, net) -> bool:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(16, self.dims, generator=gen, dtype=DTYPE)
        with torch.no_grad():
            want, got = net(x), self(x)
        scale = want.abs().max().clamp(min=1.0)
        return bool(((want - got).abs().max() / scale) <= AGREEMENT)

    @property
    def dims(self) -> int:
        return self.weights[0].shape[1]

    @property
    def relu_sizes(self) -> tuple[int, ...]:
        return tuple(w.shape[0] for w in self.weights[:-1])

    def __call__(self, x: Tensor) -> Tensor:
        h = x
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w.T + b
            if i < len(self.weights) - 1:
                h = h.clamp(min=0)
        return h

    def pieces(self, masks: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """With each ReLU layer's phases fixed by `masks` ((n_l,) of 0/1), the network is
        affine: (A, c) with rows for every ReLU's pre-activation, layer by layer, then the
        outputs: `[pre_1; ...; pre_L; y] = A x + c`."""
        a, c = self.weights[0], self.biases[0]
        rows, consts = [a], [c]
        for k in range(1, len(self.weights)):
            m = masks[k - 1].to(DTYPE)
            a = self.weights[k] @ (m[:, None] * a)
            c = self.weights[k] @ (m * c) + self.biases[k]
            rows.append(a)
            consts.append(c)
        return torch.cat(rows), torch.cat(consts)

    def bound(self, lo: Tensor, hi: Tensor, c: Tensor) -> ChainBounds:
        """CROWN lower bounds of `c @ y` (c: (S, outputs)) over the boxes [lo, hi] (N, d)."""
        with torch.no_grad():
            return self._bound(lo.to(DTYPE), hi.to(DTYPE), c.to(DTYPE))

    def _bound(self, lo: Tensor, hi: Tensor, c: Tensor) -> ChainBounds:
        n = lo.shape[0]
        centre, radius = (hi + lo) / 2, (hi - lo) / 2
        w1, b1 = self.weights[0], self.biases[0]
        # forward linear bounds L(x) <= z <= U(x) per neuron (exact for the first layer)
        first = torch.cat([w1.T, b1[None]])[None].expand(n, -1, -1)
        f_lo = f_up = first
        low = _concretize_forward(first, centre, radius, upper=False)
        up = _concretize_forward(first, centre, radius, upper=True)
        pre = [(low, up)]
        relax = [_relaxation(low, up)]
        for k in range(1, len(self.weights) - 1):
            w, b = self.weights[k], self.biases[k]
            f_lo, f_up = _forward(w, b, f_lo, f_up, relax[-1])
            low = _concretize_forward(f_lo, centre, radius, upper=False)
            up = _concretize_forward(f_up, centre, radius, upper=True)
            h_lo, h_hi = pre[-1][0].clamp(min=0), pre[-1][1].clamp(min=0)
            mid, rad = (h_hi + h_lo) / 2, (h_hi - h_lo) / 2
            low = torch.maximum(low, mid @ w.T + b - rad @ w.abs().T)
            up = torch.minimum(up, mid @ w.T + b + rad @ w.abs().T)
            low, up = self._crown_unstable(w, b, k, relax, low, up, centre, radius)
            up = torch.maximum(up, low)
            pre.append((low, up))
            relax.append(_relaxation(low, up))
        stable = torch.ones(n, dtype=torch.bool)
        for low, up in pre:
            stable &= ~((low < 0) & (up > 0)).any(1)
        w, b = self.weights[-1], self.biases[-1]
        spec = (c @ w)[None].expand(n, -1, -1)
        a, bias = self._back(spec, (c @ b)[None].expand(n, -1), len(self.weights) - 1, relax)
        lower = _concretize(a, bias, centre, radius)
        h_lo, h_hi = pre[-1][0].clamp(min=0), pre[-1][1].clamp(min=0)
        cw = c @ w
        ibp = (h_hi + h_lo) / 2 @ cw.T + c @ b - (h_hi - h_lo) / 2 @ cw.abs().T
        return ChainBounds(torch.maximum(lower, ibp), a, bias, tuple(pre), stable)

    def _crown_unstable(self, w, b, k, relax, low, up, centre, radius):
        """Tighten, by CROWN, the bounds of the neurons of layer k that the cheaper bounds
        leave unstable (a stable neuron's relaxation is exact whatever its bounds, so CROWN
        rows for it change nothing downstream but IBP): the rows of all boxes stacked into one
        matrix, each with its box's index, so no box pays for another's unstable count."""
        unstable = (low < 0) & (up > 0)
        if int(unstable.sum()) > DENSE_SHARE * unstable.numel():  # big boxes: every row
            n, m = low.shape
            spec = torch.cat([w, -w])[None].expand(n, -1, -1)
            a, bias = self._back(spec, torch.cat([b, -b])[None].expand(n, -1), k, relax)
            crown = _concretize(a, bias, centre, radius)
            return torch.maximum(low, crown[:, :m]), torch.minimum(up, -crown[:, m:])
        box, neuron = torch.nonzero(unstable, as_tuple=True)
        if not len(box):
            return low, up
        rows = torch.cat([w[neuron], -w[neuron]])  # (2R, n_prev): lower, then upper rows
        where = torch.cat([box, box])
        bias = torch.cat([b[neuron], -b[neuron]])
        for j in range(k - 1, -1, -1):
            alpha, lam, mu = (t[where] for t in relax[j])
            pos = rows.clamp(min=0)
            neg = rows - pos
            bias = bias + (neg * mu).sum(1)
            rows = pos * alpha + neg * lam
            bias = bias + rows @ self.biases[j]
            rows = rows @ self.weights[j]
        crown = (rows * centre[where]).sum(1) - (rows.abs() * radius[where]).sum(1) + bias
        r = len(box)
        low, up = low.clone(), up.clone()
        low[box, neuron] = torch.maximum(low[box, neuron], crown[:r])
        up[box, neuron] = torch.minimum(up[box, neuron], -crown[r:])
        return low, up

    def _back(self, a: Tensor, bias: Tensor, k: int, relax) -> tuple[Tensor, Tensor]:
        """Back-substitute `a` (N, R, n_k) on the output of ReLU layer k-1 (and `bias`) to
        the input: returns (N, R, d) and (N, R)."""
        for j in range(k - 1, -1, -1):
            alpha, lam, mu = relax[j]
            pos = a.clamp(min=0)
            neg = a - pos
            bias = bias + (neg @ mu[:, :, None])[..., 0]
            a = pos * alpha[:, None] + neg * lam[:, None]
            bias = bias + a @ self.biases[j]
            a = a @ self.weights[j]
        return a, bias


def _relaxation(low: Tensor, up: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per neuron: the lower slope (CROWN's adaptive choice), the upper slope and the upper
    intercept of ReLU on [low, up] (stable neurons: the identity or zero, exactly)."""
    unstable = (low < 0) & (up > 0)
    active = low >= 0
    width = torch.where(unstable, up - low, torch.ones_like(up))
    lam = torch.where(unstable, up / width, active.to(up.dtype))
    mu = torch.where(unstable, -lam * low, torch.zeros_like(up))
    alpha = torch.where(unstable, (up >= -low).to(up.dtype), active.to(up.dtype))
    return alpha, lam, mu


def _concretize(a: Tensor, bias: Tensor, centre: Tensor, radius: Tensor) -> Tensor:
    """min over the boxes of `a . x + bias`: (N, R)."""
    return (a @ centre[:, :, None])[..., 0] - (a.abs() @ radius[:, :, None])[..., 0] + bias


def _forward(w, b, f_lo, f_up, relax):
    """Forward linear bounds of `w @ relu(z) + b` from those of z (each (N, d + 1, m): input
    coefficients, then the constant) through the relaxation of the ReLU: h >= alpha z >=
    alpha L(x), h <= lam U(x) + mu (alpha, lam >= 0)."""
    alpha, lam, mu = relax
    hl = alpha[:, None] * f_lo
    hu = lam[:, None] * f_up
    hu[:, -1] += mu
    wp, wn = w.clamp(min=0).T, w.clamp(max=0).T
    lo = hl @ wp + hu @ wn
    up = hu @ wp + hl @ wn
    lo[:, -1] += b
    up[:, -1] += b
    return lo, up


def _concretize_forward(f: Tensor, centre: Tensor, radius: Tensor, upper: bool) -> Tensor:
    """min (or max) over the boxes of forward bounds f (N, d + 1, m): (N, m)."""
    a, c = f[:, :-1], f[:, -1]
    mid = (centre[:, None] @ a)[:, 0] + c
    spread = (radius[:, None] @ a.abs())[:, 0]
    return mid + spread if upper else mid - spread
