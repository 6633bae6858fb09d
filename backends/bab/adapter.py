"""The one place branch and bound touches the bound engine (`threatlang/bounds`).

Everything else in this package sees `EngineNet.bound`: lower bounds on linear functions of the
outputs (a C matrix) over a batch of input boxes, with some ReLUs fixed active or inactive (the
splits), plus what branching needs: the input coefficients of each bound (input splitting) and
each ReLU's pre-activation bounds and output coefficients (ReLU splitting). When the engine
exposes this over traced graphs, only this module changes.

Bounds are computed in float64 on a copy of the model, so round-off cannot turn a violated
property into a proof for any margin above ~1e-12.
"""

from __future__ import annotations

import copy
import weakref

import attrs
import torch
from torch import Tensor, nn

from threatlang.bounds import (
    BackwardOptions,
    Box,
    LowerSlope,
    UnsupportedLayer,
    back_substitute,
    capture,
    forward,
)
from threatlang.bounds.affine import (
    BoundBatchNorm,
    BoundConv2d,
    BoundFlatten,
    BoundIdentity,
    BoundLinear,
)
from threatlang.bounds.inputs import BoxInput
from threatlang.bounds.nonlinear import BoundReLU

from . import optimize
from .fc_fast import FcChain

#: run the slope optimiser's iterations in float32 on fully connected chains
FAST_ITERATIONS = True

__all__ = ["Bounds", "EngineNet", "UnsupportedLayer"]

DTYPE = torch.float64
_OPTS = BackwardOptions(LowerSlope.ADAPTIVE)


@attrs.frozen(eq=False)
class Bounds:
    """Bounds for N domains and S output rows."""

    lower: Tensor  # (N, S) lower bounds on C @ y
    a_in: Tensor  # (N, S, d) input coefficients of the lower bound (flattened input)
    pre: tuple[tuple[Tensor, Tensor], ...]  # per ReLU: (lo, hi) of its input, (N, n_l) each
    relu_a: tuple[Tensor, ...]  # per ReLU: coefficients (N, S, n_l) on its output
    empty: Tensor  # (N,) bool: the splits contradict each other (the domain is empty)
    #: per ReLU layer (N, S, n_l): the optimised lower slopes and split multipliers that gave
    #: `lower` (None without `alpha_steps`, or without splits), to warm-start children
    alphas: tuple[Tensor, ...] | None = None
    betas: tuple[Tensor, ...] | None = None


#: the float64 copy of each model, so the shards and boxes of one network share one capture
#: (a memo: the copy is a pure function of a model whose weights bab never changes)
_WIDE: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


def _wide_copy(model: nn.Module) -> nn.Module:
    wide = _WIDE.get(model)
    if wide is None:
        wide = _WIDE[model] = copy.deepcopy(model).to(DTYPE).eval()
        for p in wide.parameters():  # slopes are optimised by autograd, never the weights
            p.requires_grad_(False)
    return wide


class EngineNet:
    """A model compiled for bounding; raises `UnsupportedLayer` naming what it cannot bound."""

    def __init__(self, model: nn.Module, input_shape: tuple[int, ...]) -> None:
        self.model = _wide_copy(model)
        self.input_shape = tuple(input_shape)
        example = torch.zeros(1, *self.input_shape, dtype=DTYPE)
        self.ops = capture(self.model, example).chain()
        self.relus = [i for i, op in enumerate(self.ops) if isinstance(op, BoundReLU)]
        with torch.no_grad():
            x = torch.zeros(1, *self.input_shape, dtype=DTYPE)
            sizes = []
            for i, op in enumerate(self.ops):
                if i in self.relus:
                    sizes.append(x[0].numel())
                x = op.forward(x)
        self.relu_sizes = tuple(sizes)
        self.outputs = x[0].numel()
        #: float32 Linear/ReLU matrices where the network is such a chain (the optimiser's
        #: iterations run on them; bounds stay float64)
        self.fc = FcChain.of(self.ops) if FAST_ITERATIONS else None

    @property
    def dims(self) -> int:
        return int(torch.tensor(self.input_shape).prod())

    def __call__(self, x: Tensor) -> Tensor:
        """Outputs (N, outputs) for flat inputs (N, d)."""
        return forward(self.ops, x.reshape(-1, *self.input_shape)).flatten(1)

    def linear_pieces(self, masks: tuple[Tensor, ...]) -> tuple[Tensor, Tensor]:
        """With every ReLU's phase fixed by `masks` (per layer, (n_l,) of 0/1), the network is
        affine: returns (A, c) with rows for each ReLU's pre-activation, in layer order, then
        the outputs: `[pre_1; ...; pre_L; y] = A x + c` for flat inputs x."""

        def pieces(x: Tensor) -> Tensor:
            h = x.reshape(1, *self.input_shape)
            out, layer = [], 0
            for i, op in enumerate(self.ops):
                if i in self.relus:
                    out.append(h.flatten())
                    h = h * masks[layer].reshape(h.shape[1:]).to(DTYPE)
                    layer += 1
                else:
                    h = op.forward(h)
            return torch.cat([*out, h.flatten()])

        x0 = torch.zeros(self.dims, dtype=DTYPE)
        with torch.no_grad():
            c = pieces(x0)
        a = torch.autograd.functional.jacobian(pieces, x0)
        return a.detach(), c

    def prepare(self, lo, hi, splits=None, pre_in=None, inner_steps: int = 0, refine=False):
        """The interval pass of a bound: (input set, trace of each op's input box, per ReLU
        layer the (N, n_l) pre-activation bounds with the splits applied, (N,) empty, the
        output box). Intermediate bounds come from `pre_in` (intersected with IBP) when
        given (`refine`: tightened by CROWN on the neurons still unstable, which the splits
        of earlier layers may settle), else from CROWN (alpha-optimised with `inner_steps`)."""
        n = lo.shape[0]
        shape = self.input_shape
        box = Box.from_bounds(lo.reshape(n, *shape), hi.reshape(n, *shape))
        inputs = BoxInput(box)
        trace: dict = {}
        empty = torch.zeros(n, dtype=torch.bool)
        pre: list[tuple[Tensor, Tensor]] = []
        for i, op in enumerate(self.ops):
            if isinstance(op, BoundReLU):
                layer = len(pre)
                if pre_in is not None:
                    low, up = pre_in[layer]
                    known = Box.from_bounds(low.reshape(box.lo.shape), up.reshape(box.lo.shape))
                    box = _intersect(box, known)
                    if refine and not _ibp_exact(self.ops[:i]):
                        box = _refine_unstable(inputs, self.ops[:i], box, trace)
                elif not _ibp_exact(self.ops[:i]):
                    box = _intersect(
                        box, _crown_box(inputs, self.ops[:i], box, trace, pre, inner_steps)
                    )
                low, up = box.lo.flatten(1), box.hi.flatten(1)
                if splits is not None and splits[layer] is not None:
                    s = splits[layer]
                    low = torch.where(s > 0, low.clamp(min=0), low)
                    up = torch.where(s < 0, up.clamp(max=0), up)
                    empty |= (low > up).any(1)
                    up = torch.maximum(up, low)
                    box = Box.from_bounds(low.reshape(box.lo.shape), up.reshape(box.lo.shape))
                pre.append((low, up))
            trace[id(op)] = box
            box = op.interval(box, trace)
        return inputs, trace, tuple(pre), empty, box

    def bound(
        self,
        lo: Tensor,
        hi: Tensor,
        c: Tensor,
        splits: tuple[Tensor, ...] | None = None,
        alpha_steps: int = 0,
        *,
        alpha_intermediate: bool = False,
        pre: tuple[tuple[Tensor, Tensor], ...] | None = None,
        alphas: tuple[Tensor, ...] | None = None,
        betas: tuple[Tensor, ...] | None = None,
        active: Tensor | None = None,
        refine: bool = False,
    ) -> Bounds:
        """CROWN (adaptive lower slopes, intermediate ReLU bounds by CROWN, all intersected
        with IBP) of `c @ y` over the boxes [lo, hi] (N, d); `splits[l]` (N, n_l) holds +1
        (active: pre >= 0), -1 (inactive: pre <= 0) or 0 per neuron of ReLU layer l.

        `alpha_steps` > 0 optimises the lower slopes of the final rows (alpha-CROWN) and, on
        split neurons, the multipliers of the split constraints (beta-CROWN), by that many
        projected Adam steps from `alphas` / `betas` (per ReLU layer (N, S, n_l); a parent's,
        returned in `Bounds.alphas` / `Bounds.betas`); the result is never looser than CROWN.
        `alpha_intermediate` optimises each intermediate layer's bounds the same way (costly:
        2 n_l rows per layer; worth it once, at a root). `pre` (per layer (N, n_l) lo, hi:
        bounds valid on a superset, a parent's `Bounds.pre`) replaces the intermediate CROWN
        passes (`refine`: and CROWN tightens its unstable neurons); `active` (N, S) bool
        marks the rows worth optimising."""
        with torch.no_grad():
            return self._bound(
                lo,
                hi,
                c,
                splits,
                alpha_steps,
                alpha_intermediate,
                pre,
                alphas,
                betas,
                active,
                refine,
            )

    def _bound(
        self,
        lo,
        hi,
        c,
        splits,
        alpha_steps,
        alpha_intermediate,
        pre_in,
        alphas,
        betas,
        active,
        refine=False,
    ) -> Bounds:
        inner = alpha_steps if alpha_intermediate else 0
        inputs, trace, pre, empty, box = self.prepare(lo, hi, splits, pre_in, inner, refine)
        n = lo.shape[0]
        out_shape = box.centre.shape[1:]
        if c.dim() == 3:  # rows per domain (N, S, outputs)
            a = c.to(DTYPE).reshape(n, c.shape[1], *out_shape)
        else:
            a = c.to(DTYPE).reshape(1, c.shape[0], *out_shape).expand(n, -1, *out_shape)
        ibp = (a.flatten(2) * box.centre.flatten(1)[:, None]).sum(2) - (
            a.flatten(2).abs() * box.radius.flatten(1)[:, None]
        ).sum(2)
        crown = optimize.backward(self.ops, inputs, a, trace)
        lower, res, out_alphas, out_betas = torch.maximum(crown.lower, ibp), crown, None, None
        optimised = alpha_steps > 0 or alphas is not None
        if optimised and pre and any(bool(((lw < 0) & (u > 0)).any()) for lw, u in pre):
            signs = None
            if splits is not None and any(bool((sp != 0).any()) for sp in splits):
                signs = tuple(sp.to(DTYPE) for sp in splits)
            fast = None
            if self.fc is not None:
                fast = _fast_scorer(self.fc, lo, hi, a, pre, signs)
            best = optimize.optimise(
                self.ops, inputs, a, trace, pre, alpha_steps, alphas, signs, betas, active, fast
            )
            lower = torch.maximum(lower, best.result.lower)
            res, out_alphas, out_betas = best.result, best.alphas, best.betas
        return Bounds(
            lower=lower,
            a_in=res.a_in,
            pre=pre,
            relu_a=res.relu_a,
            empty=empty,
            alphas=out_alphas,
            betas=out_betas,
        )


def _fast_scorer(fc: FcChain, lo, hi, spec, pre, signs):
    f32 = torch.float32
    lo32, hi32 = lo.flatten(1).to(f32), hi.flatten(1).to(f32)
    spec32 = spec.flatten(2).to(f32)
    pre32 = [(low.to(f32), up.to(f32)) for low, up in pre]
    signs32 = None if signs is None else [sg.to(f32) for sg in signs]
    return lambda al, be: fc.lower(lo32, hi32, spec32, pre32, al, be, signs32)


def _ibp_exact(prefix) -> bool:
    """IBP is exact per neuron after one affine layer (and per-element maps) on a box."""
    weighted = [op for op in prefix if isinstance(op, BoundLinear | BoundConv2d)]
    elementwise = all(
        isinstance(op, BoundLinear | BoundConv2d | BoundBatchNorm | BoundFlatten | BoundIdentity)
        for op in prefix
    )
    return elementwise and len(weighted) <= 1


def _crown_box(inputs: BoxInput, prefix, box: Box, trace, pre, steps: int = 0) -> Box:
    """CROWN bounds on every neuron of `prefix`'s output, then (with `steps`) alpha-optimised
    bounds on the neurons still unstable (the others' bounds do not enter a relaxation)."""
    n, shape = box.centre.shape[0], box.centre.shape[1:]
    d = box.centre[0].numel()
    eye = torch.eye(d, dtype=box.centre.dtype)
    spec = torch.cat([eye, -eye]).reshape(1, 2 * d, *shape).expand(n, -1, *shape)
    a_in, bias = back_substitute(prefix, spec, trace, _OPTS)
    bounds = inputs.concretize(a_in, bias)
    out = Box.from_bounds(bounds[:, :d].reshape(n, *shape), (-bounds[:, d:]).reshape(n, *shape))
    if steps > 0 and pre:
        out = _refine_unstable(inputs, prefix, _intersect(box, out), trace, pre, steps)
    return out


def _refine_unstable(inputs: BoxInput, prefix, box: Box, trace, pre=None, steps=0) -> Box:
    """`box` tightened by CROWN (alpha-optimised with `steps`) on the neurons unstable in
    some domain of the batch (the stable ones cannot change phase, so their bounds are not
    worth a row)."""
    n, shape = box.centre.shape[0], box.centre.shape[1:]
    lo, hi = box.lo.flatten(1), box.hi.flatten(1)
    cols = torch.nonzero(((lo < 0) & (hi > 0)).any(0)).flatten()
    m = cols.numel()
    if m == 0:
        return box
    d = lo.shape[1]
    spec = torch.zeros(2 * m, d, dtype=lo.dtype)
    spec[torch.arange(m), cols] = 1.0
    spec[m + torch.arange(m), cols] = -1.0
    spec = spec.reshape(1, 2 * m, *shape).expand(n, -1, *shape)
    if steps > 0 and pre:
        bounds = optimize.optimise(prefix, inputs, spec, trace, pre, steps).result.lower
    else:
        a_in, bias = back_substitute(prefix, spec, trace, _OPTS)
        bounds = inputs.concretize(a_in, bias)
    lo, hi = lo.clone(), hi.clone()
    lo[:, cols] = torch.maximum(lo[:, cols], bounds[:, :m])
    hi[:, cols] = torch.minimum(hi[:, cols], -bounds[:, m:])
    hi = torch.maximum(hi, lo)
    return Box.from_bounds(lo.reshape(n, *shape), hi.reshape(n, *shape))


def _intersect(a: Box, b: Box) -> Box:
    lo = torch.maximum(a.lo, b.lo)
    hi = torch.minimum(a.hi, b.hi)
    return Box.from_bounds(lo, torch.maximum(hi, lo))
