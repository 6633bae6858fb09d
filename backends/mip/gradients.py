"""A deviating bidder's utility and its gradient in the misreport, without autograd.

The misreport ascent (RegretNet's inner loop, §4.2.2.2) needs ``d u_i / d b_i`` for a batch of
deviation profiles a few times per training step. Through autograd that is a recorded graph and
an engine pass over ~40 small ops; the mechanism is a ReLU MLP with two small heads, so the
backward is a handful of matrix products written out here (checked against autograd in the
tests, for every allocation and payment kind).
"""

from __future__ import annotations

import torch

from .mechanisms import AllocationKind, Mechanism, PaymentKind
from .sparsemax import sparsemax
from .valuations import deviation_profiles


@torch.no_grad()
def utility_and_grad(
    mech: Mechanism, values: torch.Tensor, misreports: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``u[..., i]``: agent ``i``'s utility when it alone reports ``misreports[..., i, :]``;
    ``grad``: its gradient in that report. Shapes ``(..., A)`` and ``(..., A, items)``."""
    cfg = mech.config
    agents, items = cfg.agents, cfg.items
    lead = misreports.shape[:-2]
    x = deviation_profiles(values, misreports).reshape(-1, agents * items)  # row (k, i): i lies
    m = x.shape[0] // agents
    own = misreports.reshape(m, agents, items)
    vals = values.expand(*lead, agents, items).reshape(m, agents, items)

    hs, h = [], x
    for layer in mech.trunk:
        h = torch.addmm(layer.bias, h, layer.weight.T).clamp_min_(0.0)
        hs.append(h)
    w_heads = torch.cat([mech.alloc_head.weight, mech.pay_head.weight])  # one product for both
    heads = torch.addmm(torch.cat([mech.alloc_head.bias, mech.pay_head.bias]), h, w_heads.T)
    n_alloc = (agents + 1) * items
    logits = heads[:, :n_alloc].reshape(m, agents, agents + 1, items)
    if cfg.allocation is AllocationKind.SPARSEMAX:
        full = sparsemax(logits, dim=-2)
    else:
        full = torch.softmax(logits, dim=-2)
    alloc = _own(full[:, :, :agents])  # (m, A, items): the liar's own allocation
    raw = _own(heads[:, n_alloc:].reshape(m, agents, agents))

    g_b = None
    if cfg.payment is PaymentKind.FREE:
        pay = raw.clamp_min(0.0) if mech.clip_payments else raw
        g_raw = -((raw > 0).to(raw.dtype) if mech.clip_payments else torch.ones_like(raw))
        g_alloc = vals
    else:
        if cfg.payment is PaymentKind.FRACTIONAL_SIGMOID:
            frac = torch.sigmoid(raw)
            d_frac = frac * (1 - frac)
        else:
            frac = (raw + 0.5).clamp(0.0, 1.0)
            d_frac = ((raw > -0.5) & (raw < 0.5)).to(raw.dtype)
        spent = (alloc * own).sum(-1)
        pay = frac * spent
        g_raw = -d_frac * spent
        g_alloc = vals - frac[..., None] * own
        g_b = -frac[..., None] * alloc
    u = (alloc * vals).sum(-1) - pay

    g_full = torch.zeros_like(full)
    g_full[:, :, :agents] = _spread(g_alloc)
    if cfg.allocation is AllocationKind.SPARSEMAX:
        support = (full > 0).to(full.dtype)
        mean = (g_full * support).sum(-2, keepdim=True) / support.sum(-2, keepdim=True)
        g_logits = support * (g_full - mean)
    else:
        g_logits = full * (g_full - (full * g_full).sum(-2, keepdim=True))
    g_heads = torch.cat(
        [g_logits.reshape(m * agents, -1), torch.diag_embed(g_raw).reshape(m * agents, agents)],
        dim=1,
    )
    g_h = g_heads @ w_heads
    for layer, h in zip(reversed(mech.trunk), reversed(hs), strict=True):
        g_h = torch.ops.aten.threshold_backward(g_h, h, 0.0) @ layer.weight  # zero where h = 0
    g_x = _own(g_h.view(m, agents, agents, items))
    if g_b is not None:
        g_x = g_x + g_b
    return u.view(*lead, agents), g_x.reshape(*lead, agents, items)


def _own(t: torch.Tensor) -> torch.Tensor:
    """``t[:, i, i, ...]`` for every agent ``i``: ``(m, A, A, ...) -> (m, A, ...)``."""
    if t.shape[1] == 1:
        return t[:, :, 0]
    return torch.diagonal(t, dim1=1, dim2=2).movedim(-1, 1)


def _spread(t: torch.Tensor) -> torch.Tensor:
    """The inverse placement: ``(m, A, items) -> (m, A, A, items)``, zero off the diagonal."""
    if t.shape[1] == 1:
        return t[:, :, None]
    return torch.diag_embed(t.movedim(1, -1)).movedim(-2, 1).movedim(-1, 2)
