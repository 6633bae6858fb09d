"""The mechanism's forward and backward written out, without autograd.

The trainer needs, every batch, the misreport gradient ``d u_i / d b_i`` a few times (the
ascent, RegretNet's inner loop, §4.2.2.2) and the weight gradient of the training loss once.
Through autograd each is a recorded graph and an engine pass over ~40 small ops; the mechanism
is a ReLU MLP with two small heads, so ``forward`` keeps the few activations the backward needs
and ``backward`` is a handful of matrix products, given the loss's gradient in the allocation
and payment of every row (checked against autograd in ``tests/mip/test_fast_paths.py``, for
every allocation and payment kind).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .mechanisms import AllocationKind, Mechanism, PaymentKind
from .sparsemax import sparsemax
from .valuations import deviation_profiles


class Forward(NamedTuple):
    """One forward pass over rows ``x (N, agents * items)`` and what its backward needs."""

    x: torch.Tensor
    x1: torch.Tensor  # (N, agents * items + 1): x and a column of ones (the bias's input)
    hidden: list[torch.Tensor]  # post-ReLU activations of every trunk layer
    #: (N, agents + 1, items): the allocation with the "not allocated" entry (None on the
    #: one-bidder path, whose backward reads ``alloc``)
    full: torch.Tensor | None
    raw: torch.Tensor  # (N, agents): the payment head's output
    frac: torch.Tensor | None  # (N, agents): the payment fraction (fractional payments)
    alloc: torch.Tensor  # (N, agents, items)
    pay: torch.Tensor  # (N, agents)


class Weights(NamedTuple):
    """The mechanism's parameters laid out for ``forward``/``backward`` (``prepare``): built
    once per set of weights, shared by every pass over them."""

    first: torch.Tensor  # (inputs + 1, H): the first layer's W^T with its bias as the last row
    heads_w: torch.Tensor  # (K, H): both heads as one affine map (one product for both)
    heads_b: torch.Tensor  # (K,)


def prepare(mech: Mechanism) -> Weights:
    first = mech.trunk[0]
    return Weights(
        torch.cat([first.weight.T, first.bias[None]]),
        torch.cat([mech.alloc_head.weight, mech.pay_head.weight]),
        torch.cat([mech.alloc_head.bias, mech.pay_head.bias]),
    )


@torch.no_grad()
def forward(mech: Mechanism, x: torch.Tensor, weights: Weights | None = None) -> Forward:
    """``mech`` on rows ``x (N, agents * items)`` (the same numbers as ``mech(x.view(...))``);
    ``weights``: ``prepare(mech)`` when the caller already has it."""
    cfg = mech.config
    agents, items = cfg.agents, cfg.items
    n = x.shape[0]
    if _lone(mech):
        return _lone_forward(mech, x, prepare(mech) if weights is None else weights)
    # the products are laid out as CPU BLAS runs them fastest at these shapes (a handful of
    # inputs or outputs against 128 units): the bias folded into the first product, the heads'
    # few outputs as rows (``W h^T``)
    w = prepare(mech) if weights is None else weights
    x1 = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    h = (x1 @ w.first).clamp_min_(0.0)
    hs = [h]
    for layer in list(mech.trunk)[1:]:
        h = torch.addmm(layer.bias, h, layer.weight.T).clamp_min_(0.0)
        hs.append(h)
    out = (w.heads_w @ h.T).T + w.heads_b
    n_alloc = (agents + 1) * items
    logits = out[:, :n_alloc].view(n, agents + 1, items)
    if cfg.allocation is AllocationKind.SPARSEMAX and agents == 1:
        # two entries: sparsemax is (clamp((z0 - z1 + 1) / 2, 0, 1), the rest)
        first = (logits[:, 0] - logits[:, 1]).add_(1.0).mul_(0.5).clamp_(0.0, 1.0)
        full = torch.stack([first, 1.0 - first], dim=1)
    elif cfg.allocation is AllocationKind.SPARSEMAX:
        full = sparsemax(logits, dim=1)
    else:
        full = torch.softmax(logits, dim=1)
    alloc = full[:, :agents]
    raw = out[:, n_alloc:]
    frac = None
    if cfg.payment is PaymentKind.FREE:
        pay = raw.clamp_min(0.0) if mech.clip_payments else raw
    else:
        if cfg.payment is PaymentKind.FRACTIONAL_SIGMOID:
            frac = torch.sigmoid(raw)
        else:
            frac = (raw + 0.5).clamp_(0.0, 1.0)
        pay = frac * (alloc * x.view(n, agents, items)).sum(-1)
    return Forward(x, x1, hs, full, raw, frac, alloc, pay)


@torch.no_grad()
def backward(
    mech: Mechanism,
    fwd: Forward,
    g_alloc: torch.Tensor,
    g_pay: torch.Tensor | None,
    weights: bool = True,
    inputs: bool = False,
    weights_of: Weights | None = None,
) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
    """Gradients of a loss whose gradient in ``fwd.alloc`` is ``g_alloc (N, agents, items)`` and
    in ``fwd.pay`` is ``g_pay (N, agents)`` (None: zero): in the parameters, in the order of
    ``mech.parameters()`` (if ``weights``), and in the rows ``x`` (if ``inputs``)."""
    cfg = mech.config
    agents, items = cfg.agents, cfg.items
    n = fwd.x.shape[0]
    if fwd.full is None:
        w = prepare(mech) if weights_of is None else weights_of
        return _lone_backward(mech, fwd, g_alloc, g_pay, weights, inputs, w)
    g_x = None
    if g_pay is None:
        g_raw = torch.zeros_like(fwd.raw)
    elif cfg.payment is PaymentKind.FREE:
        g_raw = g_pay * (fwd.raw > 0) if mech.clip_payments else g_pay
    else:
        bids = fwd.x.view(n, agents, items)
        frac = fwd.frac
        if cfg.payment is PaymentKind.FRACTIONAL_SIGMOID:
            d_frac = frac * (1 - frac)
        else:
            d_frac = ((fwd.raw > -0.5) & (fwd.raw < 0.5)).to(frac.dtype)
        spent = (fwd.alloc * bids).sum(-1)
        g_raw = g_pay * d_frac * spent
        scaled = (g_pay * frac)[..., None]
        g_alloc = g_alloc + scaled * bids
        if inputs:
            g_x = (scaled * fwd.alloc).reshape(n, agents * items)
    full = fwd.full
    g_full = torch.cat([g_alloc, torch.zeros_like(full[:, agents:])], dim=1)
    if cfg.allocation is AllocationKind.SPARSEMAX:
        support = (full > 0).to(full.dtype)
        mean = (g_full * support).sum(1, keepdim=True) / support.sum(1, keepdim=True)
        g_logits = support * (g_full - mean)
    else:
        g_logits = full * (g_full - (full * g_full).sum(1, keepdim=True))
    g_out = torch.cat([g_logits.reshape(n, -1), g_raw], dim=1)
    w_heads = (prepare(mech) if weights_of is None else weights_of).heads_w
    grads: list[torch.Tensor] = []
    if weights:
        last = fwd.hidden[-1]
        g_wh, g_bh = g_out.T @ last, g_out.sum(0)
        k = (agents + 1) * items
        grads = [g_wh[:k], g_bh[:k], g_wh[k:], g_bh[k:]]
    g_h = g_out @ w_heads
    trunk = list(mech.trunk)
    for depth in range(len(trunk) - 1, -1, -1):
        g_pre = torch.ops.aten.threshold_backward(g_h, fwd.hidden[depth], 0.0)
        if weights and depth > 0:
            grads[:0] = [g_pre.T @ fwd.hidden[depth - 1], g_pre.sum(0)]
        elif weights:  # weight and bias in one product, few rows out
            g_wb = (fwd.x1.T @ g_pre).T
            grads[:0] = [g_wb[:, :-1], g_wb[:, -1]]
        if depth > 0:
            g_h = g_pre @ trunk[depth].weight
        elif inputs:
            g_h = (trunk[0].weight.T @ g_pre.T).T
    if inputs:
        g_x = g_h if g_x is None else g_x + g_h
    return (grads if weights else None), g_x


@torch.no_grad()
def own_utilities(
    mech: Mechanism,
    values: torch.Tensor,
    misreports: torch.Tensor,
    weights: Weights | None = None,
) -> torch.Tensor:
    """``utility_and_grad``'s utility alone: ``(..., A)``."""
    if _lone(mech):
        w = prepare(mech) if weights is None else weights
        return _one_bidder(mech, values, misreports, w, grad=False)[0]
    cfg = mech.config
    agents, items = cfg.agents, cfg.items
    lead = misreports.shape[:-2]
    x = deviation_profiles(values, misreports).reshape(-1, agents * items)
    m = x.shape[0] // agents
    vals = values.expand(*lead, agents, items).reshape(m, agents, items)
    fwd = forward(mech, x, weights)
    alloc = own_diagonal(fwd.alloc.reshape(m, agents, agents, items))
    return ((alloc * vals).sum(-1) - own_diagonal(fwd.pay.reshape(m, agents, agents))).view(
        *lead, agents
    )


@torch.no_grad()
def stability_and_grad(
    mech: Mechanism, lo: torch.Tensor, hi: torch.Tensor, weight: float
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``weight`` x the ReLU-stability regulariser (``bounds.stability_penalty``: ``-tanh(1 + u l)``
    over the trunk's interval bounds on each input box, summed over units, mean over boxes) and
    its gradient in the trunk's ``(weight, bias)`` pairs, in parameter order."""
    trunk = list(mech.trunk)
    n = lo.shape[0]
    saved, penalty = [], lo.new_zeros(())
    for k, layer in enumerate(trunk):
        if k > 0:
            lo, hi = lo.clamp_min(0.0), hi.clamp_min(0.0)
        c, r = (hi + lo) * 0.5, (hi - lo) * 0.5
        w_abs = layer.weight.abs()
        centre, radius = torch.addmm(layer.bias, c, layer.weight.T), r @ w_abs.T
        lo_next, hi_next = centre - radius, centre + radius
        t = torch.tanh(1.0 + hi_next * lo_next)
        penalty = penalty - t.sum() / n
        saved.append((lo, hi, c, r, w_abs, lo_next, hi_next, t))
        lo, hi = lo_next, hi_next
    grads: list[torch.Tensor] = []
    g_lo = g_hi = None
    for k in range(len(trunk) - 1, -1, -1):
        lo_in, hi_in, c, r, w_abs, low, up, t = saved[k]
        d = (t * t - 1.0) * (weight / n)  # d(-tanh(1 + u l)) / d(u l), scaled
        gl, gu = d * up, d * low
        if g_lo is not None:
            gl, gu = gl + g_lo, gu + g_hi
        g_ctr, g_rad = gl + gu, gu - gl
        w = trunk[k].weight
        grads[:0] = [g_ctr.T @ c + torch.sign(w) * (g_rad.T @ r), g_ctr.sum(0)]
        if k > 0:
            g_c, g_r = g_ctr @ w, g_rad @ w_abs
            g_lo = torch.ops.aten.threshold_backward((g_c - g_r) * 0.5, lo_in, 0.0)
            g_hi = torch.ops.aten.threshold_backward((g_c + g_r) * 0.5, hi_in, 0.0)
    return penalty * weight, grads


@torch.no_grad()
def utility_and_grad(
    mech: Mechanism,
    values: torch.Tensor,
    misreports: torch.Tensor,
    weights: Weights | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``u[..., i]``: agent ``i``'s utility when it alone reports ``misreports[..., i, :]``;
    ``grad``: its gradient in that report. Shapes ``(..., A)`` and ``(..., A, items)``."""
    cfg = mech.config
    agents, items = cfg.agents, cfg.items
    w = prepare(mech) if weights is None else weights
    if _lone(mech):
        return _one_bidder(mech, values, misreports, w, grad=True)
    lead = misreports.shape[:-2]
    x = deviation_profiles(values, misreports).reshape(-1, agents * items)  # row (k, i): i lies
    m = x.shape[0] // agents
    vals = values.expand(*lead, agents, items).reshape(m, agents, items)
    fwd = forward(mech, x, w)
    alloc = own_diagonal(fwd.alloc.view(m, agents, agents, items))  # the liar's own allocation
    u = (alloc * vals).sum(-1) - own_diagonal(fwd.pay.view(m, agents, agents))
    g_alloc = spread_diagonal(vals).reshape(m * agents, agents, items)
    if agents == 1:
        g_pay = torch.full((m, 1), -1.0, dtype=x.dtype, device=x.device)
    else:
        g_pay = -torch.eye(agents, dtype=x.dtype, device=x.device).repeat(m, 1)
    _, g_x = backward(mech, fwd, g_alloc, g_pay, weights=False, inputs=True, weights_of=w)
    g_x = own_diagonal(g_x.view(m, agents, agents, items))
    return u.view(*lead, agents), g_x.reshape(*lead, agents, items)


def _lone(mech: Mechanism) -> bool:
    """The shipped 1x2 network: one bidder, one hidden layer, sparsemax, fractional payment."""
    cfg = mech.config
    return (
        cfg.agents == 1
        and len(mech.trunk) == 1
        and cfg.allocation is AllocationKind.SPARSEMAX
        and cfg.payment is PaymentKind.FRACTIONAL
    )


def _one_bidder(
    mech: Mechanism, values: torch.Tensor, misreports: torch.Tensor, w: Weights, grad: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``utility_and_grad`` for ``_lone`` networks, item-major: every per-row quantity is a
    contiguous ``(N,)`` vector, about half the tensor operations of the general path."""
    items = mech.config.items
    lead = misreports.shape[:-2]
    b = misreports.reshape(-1, items)
    n = b.shape[0]
    v_t = values.expand(*lead, 1, items).reshape(n, items).T  # (items, N)
    b_t = b.T
    h = (torch.cat([b, torch.ones_like(b[:, :1])], dim=1) @ w.first).clamp_min_(0.0)
    out = torch.addmm(w.heads_b[:, None], w.heads_w, h.T)  # (K, N): rows are outputs
    # logits rows: (bidder, item j) for j < items, then (not allocated, item j), then payment
    alloc = (out[:items] - out[items : 2 * items]).add_(1.0).mul_(0.5).clamp_(0.0, 1.0)
    raw = out[2 * items]
    frac = (raw + 0.5).clamp_(0.0, 1.0)
    spent = (alloc * b_t).sum(0)
    u = (alloc * v_t).sum(0) - frac * spent
    if not grad:
        return u.view(*lead, 1), None
    inside = (alloc > 0) & (alloc < 1)
    g_logit = torch.where(inside, (v_t - frac * b_t) * 0.5, 0.0)  # d u / d (z_bidder - z_none)
    g_raw = torch.where((raw > -0.5) & (raw < 0.5), -spent, 0.0)
    g_out = torch.cat([g_logit, -g_logit, g_raw[None]])  # (K, N)
    g_h = torch.ops.aten.threshold_backward(g_out.T @ w.heads_w, h, 0.0)
    g_b = (mech.trunk[0].weight.T @ g_h.T).sub_(frac * alloc)  # (items, N)
    return u.view(*lead, 1), g_b.T.reshape(*lead, 1, items)


def _lone_forward(mech: Mechanism, x: torch.Tensor, w: Weights) -> Forward:
    """``forward`` for ``_lone`` networks, item-major inside; the fields are views of it."""
    items = mech.config.items
    x_t = x.T
    x1 = torch.cat([x, torch.ones_like(x[:, :1])], dim=1)
    h = (x1 @ w.first).clamp_min_(0.0)
    out = torch.addmm(w.heads_b[:, None], w.heads_w, h.T)  # (K, N)
    alloc = (out[:items] - out[items : 2 * items]).add_(1.0).mul_(0.5).clamp_(0.0, 1.0)
    raw = out[2 * items]
    frac = (raw + 0.5).clamp_(0.0, 1.0)
    pay = frac * (alloc * x_t).sum(0)
    return Forward(x, x1, [h], None, raw[:, None], frac[:, None], alloc.T[:, None], pay[:, None])


def _lone_backward(
    mech: Mechanism,
    fwd: Forward,
    g_alloc: torch.Tensor,
    g_pay: torch.Tensor | None,
    weights: bool,
    inputs: bool,
    w: Weights,
) -> tuple[list[torch.Tensor] | None, torch.Tensor | None]:
    """``backward`` for ``_lone_forward``'s passes (the same arithmetic, item-major)."""
    items = mech.config.items
    alloc, x_t, h = fwd.alloc[:, 0].T, fwd.x.T, fwd.hidden[0]  # (items, N), (items, N)
    g_a = g_alloc[:, 0].T
    g_x = None
    if g_pay is None:
        g_raw = torch.zeros_like(fwd.raw[:, 0])
    else:
        raw, frac, g_p = fwd.raw[:, 0], fwd.frac[:, 0], g_pay[:, 0]
        scaled = g_p * frac
        g_raw = torch.where((raw > -0.5) & (raw < 0.5), g_p * (alloc * x_t).sum(0), 0.0)
        g_a = g_a + scaled * x_t
        if inputs:
            g_x = scaled * alloc
    g_logit = torch.where((alloc > 0) & (alloc < 1), g_a * 0.5, 0.0)
    g_out = torch.cat([g_logit, -g_logit, g_raw[None]])  # (K, N)
    g_h = torch.ops.aten.threshold_backward(g_out.T @ w.heads_w, h, 0.0)
    grads = None
    if weights:
        g_wh, g_bh = g_out @ h, g_out.sum(1)
        g_wb = (fwd.x1.T @ g_h).T
        k = 2 * items
        grads = [g_wb[:, :-1], g_wb[:, -1], g_wh[:k], g_bh[:k], g_wh[k:], g_bh[k:]]
    if inputs:
        g_in = mech.trunk[0].weight.T @ g_h.T
        g_x = (g_in if g_x is None else g_in.add_(g_x)).T
    return grads, g_x


def own_diagonal(t: torch.Tensor) -> torch.Tensor:
    """``t[:, i, i, ...]`` for every agent ``i``: ``(m, A, A, ...) -> (m, A, ...)``."""
    if t.shape[1] == 1:
        return t[:, :, 0]
    return torch.diagonal(t, dim1=1, dim2=2).movedim(-1, 1)


def spread_diagonal(t: torch.Tensor) -> torch.Tensor:
    """The inverse placement: ``(m, A, items) -> (m, A, A, items)``, zero off the diagonal."""
    if t.shape[1] == 1:
        return t[:, :, None]
    return torch.diag_embed(t.movedim(1, -1)).movedim(-2, 1).movedim(-1, 2)
