"""Optimised bounds for branch and bound: alpha-CROWN slopes and beta-CROWN split multipliers.

Back-substitution through a chain of bound ops gives, for any lower slopes `alpha` in [0, 1]
of the unstable ReLUs, a sound lower bound (Xu et al. 2021); the slopes are free, so projected
gradient ascent picks them per domain and output row. A domain with ReLUs split `s_j z_j >= 0`
(+1 active, -1 inactive) adds, per split neuron, the Lagrangian term `-beta_j s_j z_j` with
`beta_j >= 0` to the objective: on the domain the term is <= 0, so the bound of the sum stays
a lower bound of the objective there, and maximising over beta enforces the splits that the
box alone cannot (beta-CROWN, Wang et al. 2021). Every iterate is sound; the best seen per row
is kept, with the slopes and multipliers that gave it, to warm-start a domain's children.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import attrs
import torch
from torch import Tensor

from threatlang.bounds import BackwardOptions, LowerSlope
from threatlang.bounds.base import BoundOp, Trace
from threatlang.bounds.inputs import InputSet
from threatlang.bounds.nonlinear import BoundReLU

#: Adam step sizes for the slopes and the multipliers (alpha-beta-CROWN's defaults)
LR_ALPHA, LR_BETA = 0.1, 0.05


@attrs.frozen(eq=False)
class Backward:
    """One back-substitution: the lower bound and what branching and attacks read."""

    lower: Tensor  # (N, S)
    a_in: Tensor  # (N, S, d) coefficients on the (flat) input
    relu_a: tuple[Tensor, ...]  # per ReLU layer (N, S, n_l): coefficients on its output


@attrs.frozen(eq=False)
class Optimised:
    """The best bound seen per row, with the slopes and multipliers that gave it."""

    result: Backward
    alphas: tuple[Tensor, ...]  # per ReLU layer (N, S, n_l)
    betas: tuple[Tensor, ...] | None  # per ReLU layer (N, S, n_l), >= 0; None: no splits


def backward(
    ops: Sequence[BoundOp],
    inputs: InputSet,
    spec: Tensor,
    trace: Trace,
    alphas: Sequence[Tensor] | None = None,
    betas: Sequence[Tensor] | None = None,
    signs: Sequence[Tensor] | None = None,
) -> Backward:
    """CROWN through `ops` for `spec` (N, S, *output shape) on the boxes in `trace`, with the
    lower slopes `alphas` (per ReLU layer (N, S, n_l); None: adaptive) and the split terms
    `-beta * sign` added on each ReLU's input (per layer (N, S, n_l) and (N, n_l))."""
    relus = [op for op in ops if isinstance(op, BoundReLU)]
    layer = len(relus)
    op_alphas = None
    if alphas is not None:
        op_alphas = {}
        for op, alpha in zip(relus, alphas, strict=True):
            shape = trace[id(op)].centre.shape[1:]
            op_alphas[id(op)] = alpha.reshape(*alpha.shape[:2], *shape)
    opts = BackwardOptions(LowerSlope.ADAPTIVE, op_alphas)
    a = spec
    bias = a.new_zeros(a.shape[:2])
    relu_a: list[Tensor] = []
    for op in reversed(ops):
        if isinstance(op, BoundReLU):
            layer -= 1
            relu_a.append(a.flatten(2))
        a, b = op.backward(a, trace, opts)
        bias = bias + b
        if isinstance(op, BoundReLU) and betas is not None and signs is not None:
            term = betas[layer].clamp(min=0) * signs[layer][:, None].to(a.dtype)
            a = a - term.reshape(a.shape)
    lower = inputs.concretize(a, bias)
    return Backward(lower, a.flatten(2), tuple(reversed(relu_a)))


def initial_alphas(pre: Sequence[tuple[Tensor, Tensor]], rows: int) -> tuple[Tensor, ...]:
    """The adaptive slopes (1 where the upper bound outweighs the lower), per row."""
    return tuple((up > -low).to(up.dtype)[:, None].expand(-1, rows, -1).clone() for low, up in pre)


def optimise(
    ops: Sequence[BoundOp],
    inputs: InputSet,
    spec: Tensor,
    trace: Trace,
    pre: Sequence[tuple[Tensor, Tensor]],
    steps: int,
    alphas: Sequence[Tensor] | None = None,
    signs: Sequence[Tensor] | None = None,
    betas: Sequence[Tensor] | None = None,
    active: Tensor | None = None,
    fast: Callable[[Sequence[Tensor], Sequence[Tensor] | None], Tensor] | None = None,
) -> Optimised:
    """`steps` Adam steps on the slopes (and, with `signs`, the multipliers), from `alphas`
    and `betas` (adaptive slopes and zeros when None); `active` (N, S) bool marks the rows
    worth optimising (the others still get a sound bound). The intermediate boxes in `trace`
    stay fixed. `fast(alphas, betas)` (float32 lower bounds, e.g. `fc_fast`) runs the
    iterations when given; the bound returned is always the float64 pass with the best values.
    """
    n, s = spec.shape[:2]
    dtype = spec.dtype
    step_dtype = torch.float32 if fast is not None else dtype
    if alphas is None:
        alphas = initial_alphas(pre, s)
    alphas = [a.to(step_dtype).clone() for a in alphas]
    use_beta = signs is not None and any(bool((sg != 0).any()) for sg in signs)
    if use_beta:
        if betas is None:
            betas = [torch.zeros(n, s, low.shape[1], dtype=dtype) for low, _ in pre]
        betas = [
            (b.to(step_dtype) * (sg != 0)[:, None]).clone()
            for b, sg in zip(betas, signs, strict=True)
        ]
    else:
        betas = None
    if steps == 0:  # evaluate the given slopes and multipliers
        with torch.no_grad():
            result = backward(ops, inputs, spec, trace, _wide(alphas), _wide(betas), signs)
        return Optimised(result, tuple(alphas), tuple(betas) if betas else None)

    def score(al, be) -> Tensor:
        if fast is not None:
            return fast(al, be)
        return backward(ops, inputs, spec, trace, al, be, signs).lower

    trace = {k: v for k, v in trace.items()}
    weight = torch.ones(n, s, dtype=step_dtype) if active is None else active.to(step_dtype)
    params = [*alphas, *(betas or [])]
    best_lower = None
    best_alphas = [a.detach().clone() for a in alphas]
    best_betas = [b.detach().clone() for b in betas] if betas is not None else None
    with torch.enable_grad():
        for p in params:
            p.requires_grad_()
        groups = [{"params": alphas, "lr": LR_ALPHA}]
        if betas:
            groups.append({"params": betas, "lr": LR_BETA})
        opt = torch.optim.Adam(groups)
        for _step in range(steps):
            cur = score(alphas, betas)
            low = cur.detach()
            if best_lower is None:
                best_lower = low.clone()
            else:  # the slopes and multipliers of the best bound seen, per row
                better = low > best_lower
                best_lower = torch.where(better, low, best_lower)
                for ba, a in zip(best_alphas, alphas, strict=True):
                    ba.copy_(torch.where(better[..., None], a.detach(), ba))
                for bb, b in zip(best_betas or [], betas or [], strict=True):
                    bb.copy_(torch.where(better[..., None], b.detach(), bb))
            if not params:
                break
            opt.zero_grad()
            grads = torch.autograd.grad(-(cur * weight).sum(), params, allow_unused=True)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.step()
            with torch.no_grad():
                for a in alphas:
                    a.clamp_(0.0, 1.0)
                for b in betas or []:
                    b.clamp_(min=0.0)
        # the last iterate is scored too; then one pass with the best per row gives the bound
        # (and the coefficients branching reads)
        with torch.no_grad():
            low = score(alphas, betas)
            if best_lower is not None:
                better = low > best_lower
                for ba, a in zip(best_alphas, alphas, strict=True):
                    ba.copy_(torch.where(better[..., None], a.detach(), ba))
                for bb, b in zip(best_betas or [], betas or [], strict=True):
                    bb.copy_(torch.where(better[..., None], b.detach(), bb))
            else:
                best_alphas = [a.detach() for a in alphas]
                best_betas = [b.detach() for b in betas] if betas is not None else None
            best_alphas, best_betas = _wide(best_alphas), _wide(best_betas)
            result = backward(ops, inputs, spec, trace, best_alphas, best_betas, signs)
    return Optimised(result, tuple(best_alphas), tuple(best_betas) if best_betas else None)


def _wide(layers):
    """float64 copies for the sound pass (the float32 iterates only choose the values)."""
    return None if layers is None else [t.to(torch.float64) for t in layers]
