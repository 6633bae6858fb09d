"""Bounding for ReLU splitting (alpha-beta-CROWN's recipe): the root is bounded once with
optimised slopes for the final rows and every intermediate layer; each domain after that keeps
its parent's intermediate bounds (tightened by its splits) and optimises only the final rows'
slopes and split multipliers, warm-started from the parent's, so a few steps per domain
suffice and no intermediate CROWN pass is paid per domain."""

from __future__ import annotations

import time

import attrs
import numpy as np
import torch
from torch import Tensor

from .adapter import DTYPE, Bounds
from .domains import Domains

#: projected Adam steps at the root (final rows and each intermediate layer), and per domain
ROOT_STEPS, DOMAIN_STEPS = 20, 8
#: tighten each domain's inherited intermediate bounds by CROWN on its unstable neurons
REFINE = False


def open_rows(problem, open_terms: Tensor) -> Tensor:
    """(N, S) bool: the atom rows of the still-open terms (the ones worth optimising)."""
    member = torch.from_numpy(problem.member.astype(np.float64))
    return (open_terms.to(torch.float64) @ member) > 0


def bound_domains(search, batch: Domains, root: bool = False) -> Bounds:
    """Optimised bounds for every domain of `batch`, in engine calls cut to the time left
    (raises the search's out-of-time exception through its clock)."""
    parts, at, n = [], 0, len(batch)
    while at < n:
        k = 1 if root else search.clock.rows_allowed(n - at)
        if root and search.clock.left() <= 0:
            search.clock.rows_allowed(1)  # raises
        t0 = time.monotonic()
        sub = batch.select(slice(at, at + k))
        if root:
            parts.append(_bound_open_rows(search, sub, ROOT_STEPS, root=True))
        else:
            parts.append(_warm_then_optimise(search, sub))
        if not root:  # the root's intermediate passes would mislead the per-row estimate
            search.clock.measured(k, time.monotonic() - t0)
        search.domains += k
        at += k
    return parts[0] if len(parts) == 1 else cat_bounds(parts)


def _warm_then_optimise(search, sub: Domains) -> Bounds:
    """The parent's slopes and multipliers evaluated as they are (one pass: most domains
    close here), then `DOMAIN_STEPS` of optimisation for the domains still open only."""
    first = _bound_open_rows(search, sub, 0)
    still = sub.open & ~search.problem.closed_terms(first.lower)
    need = still.any(1) & ~first.empty
    if DOMAIN_STEPS == 0 or not bool(need.any()):
        return first
    again = sub.select(need)
    again.open = still[need]
    second = _bound_open_rows(search, again, DOMAIN_STEPS)
    idx = torch.nonzero(need).flatten()
    lower = first.lower.clone()
    lower[idx] = torch.maximum(first.lower[idx], second.lower)

    def put(full, part):
        out = full.clone()
        out[idx] = part.to(out.dtype)
        return out

    return attrs.evolve(
        first,
        lower=lower,
        a_in=put(first.a_in, second.a_in),
        relu_a=tuple(put(f, p) for f, p in zip(first.relu_a, second.relu_a, strict=True)),
        alphas=_put_layers(first.alphas, second.alphas, idx),
        betas=_put_layers(first.betas, second.betas, idx),
    )


def _put_layers(full, part, idx):
    if full is None or part is None:
        return full
    out = []
    for f, p in zip(full, part, strict=True):
        f = f.clone()
        f[idx] = p.to(f.dtype)
        out.append(f)
    return tuple(out)


def _bound_open_rows(search, sub: Domains, steps: int, root: bool = False) -> Bounds:
    """Bounds of the rows of open terms only (per domain, gathered: deep in the tree most
    terms are closed, and the cost is linear in rows). The other rows, which belong only to
    closed terms, get +inf: that closes nothing that is not closed already."""
    c = search.c
    s_rows = c.shape[0]
    wanted = open_rows(search.problem, sub.open)  # (N, S)
    k = max(int(wanted.sum(1).max()), 1)
    if k == s_rows:
        return search.net.bound(
            sub.lo,
            sub.hi,
            c,
            sub.splits,
            steps,
            alpha_intermediate=root,
            pre=sub.pre,
            alphas=sub.alphas,
            betas=sub.betas,
            refine=REFINE and not root,
        )
    n = len(sub)
    order = torch.sort((~wanted).to(torch.int8), dim=1, stable=True).indices[:, :k]  # (N, k)
    got = torch.gather(wanted, 1, order)
    rows_c = c.to(DTYPE)[order]  # (N, k, outputs)
    b = search.net.bound(
        sub.lo,
        sub.hi,
        rows_c,
        sub.splits,
        steps,
        alpha_intermediate=root,
        pre=sub.pre,
        alphas=_gather(sub.alphas, order),
        betas=_gather(sub.betas, order),
        active=got,
        refine=REFINE and not root,
    )
    lower = torch.full((n, s_rows), torch.inf, dtype=b.lower.dtype)
    lower.scatter_(1, order, torch.where(got, b.lower, torch.inf))
    return attrs.evolve(
        b,
        lower=lower,
        a_in=_scatter(b.a_in, order, s_rows),
        relu_a=tuple(_scatter(a, order, s_rows) for a in b.relu_a),
        alphas=_scatter_into(sub.alphas, b.alphas, order),
        betas=_scatter_into(sub.betas, b.betas, order),
    )


def _gather(layers, order: Tensor):
    if layers is None:
        return None
    return tuple(torch.gather(t, 1, order[..., None].expand(-1, -1, t.shape[2])) for t in layers)


def _scatter(t: Tensor, order: Tensor, rows: int) -> Tensor:
    out = t.new_zeros(t.shape[0], rows, t.shape[2])
    return out.scatter_(1, order[..., None].expand(-1, -1, t.shape[2]), t)


def _scatter_into(full, part, order: Tensor):
    """The parent's per-row tensors with the optimised rows replaced."""
    if part is None:
        return None
    if full is None:
        return None
    out = []
    for f, p in zip(full, part, strict=True):
        f = f.to(p.dtype).clone()
        out.append(f.scatter_(1, order[..., None].expand(-1, -1, f.shape[2]), p))
    return tuple(out)


def remember(batch: Domains, b: Bounds) -> None:
    """Keep the bounds' intermediate boxes, slopes and multipliers on the (selected) domains,
    for their children to start from."""
    batch.pre = b.pre
    rows = b.lower.shape[1]
    if b.alphas is not None:
        batch.alphas = tuple(a.to(torch.float32) for a in b.alphas)
    else:
        batch.alphas = tuple(
            (up > -low).to(torch.float32)[:, None].expand(-1, rows, -1).clone() for low, up in b.pre
        )
    if b.betas is not None:
        batch.betas = tuple(x.to(torch.float32) for x in b.betas)
    else:
        batch.betas = tuple(torch.zeros(len(batch), rows, low.shape[1]) for low, _ in b.pre)


def select_bounds(b: Bounds, keep) -> Bounds:
    return attrs.evolve(
        b,
        lower=b.lower[keep],
        a_in=b.a_in[keep],
        pre=tuple((lo[keep], hi[keep]) for lo, hi in b.pre),
        relu_a=tuple(a[keep] for a in b.relu_a),
        empty=b.empty[keep],
        alphas=None if b.alphas is None else tuple(a[keep] for a in b.alphas),
        betas=None if b.betas is None else tuple(x[keep] for x in b.betas),
    )


def cat_bounds(parts: list[Bounds]) -> Bounds:
    first = parts[0]

    def layers(name):
        got = [getattr(p, name) for p in parts]
        if any(g is None for g in got):
            return None
        return tuple(torch.cat(layer) for layer in zip(*got, strict=True))

    return Bounds(
        lower=torch.cat([p.lower for p in parts]),
        a_in=torch.cat([p.a_in for p in parts]),
        pre=tuple(
            (torch.cat([p.pre[i][0] for p in parts]), torch.cat([p.pre[i][1] for p in parts]))
            for i in range(len(first.pre))
        ),
        relu_a=tuple(torch.cat([p.relu_a[i] for p in parts]) for i in range(len(first.relu_a))),
        empty=torch.cat([p.empty for p in parts]),
        alphas=layers("alphas"),
        betas=layers("betas"),
    )
