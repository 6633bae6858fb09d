"""The open domains of branch and bound, as batched tensors (one row per domain).

A domain is an input box, the ReLU phases fixed on it (the splits), which terms of the
property's negation are still open on it, and, once bounded, its margin and the input
coefficients of its worst open row (what the attacks and input branching use).
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
from torch import Tensor

from .problem import Problem


@attrs.define
class Domains:
    lo: Tensor  # (N, d)
    hi: Tensor  # (N, d)
    open: Tensor  # (N, T) bool: terms not yet ruled out
    splits: tuple[Tensor, ...]  # per ReLU layer (N, n_l) int8: +1 active, -1 inactive, 0 free
    depth: Tensor  # (N,) long
    #: (N,) how far the bound is from closing the domain (< 0: open); -inf until bounded
    margin: Tensor
    #: (N, d) input coefficients of the lower bound of the worst open row (zeros until bounded)
    a_worst: Tensor
    #: (N,) bool: every ReLU is stable or split on the domain (the network is affine there)
    fixed: Tensor
    #: (N,) long: the open term furthest from being ruled out (the attacks aim at it)
    term: Tensor
    #: ReLU splitting's warm start, inherited by children (None until bounded, or input
    #: splitting): per ReLU layer, the pre-activation bounds (N, n_l) lo, hi valid on the
    #: domain, and the optimised lower slopes and split multipliers (N, S, n_l), float32
    pre: tuple[tuple[Tensor, Tensor], ...] | None = None
    alphas: tuple[Tensor, ...] | None = None
    betas: tuple[Tensor, ...] | None = None

    @classmethod
    def root(cls, lo: Tensor, hi: Tensor, open_terms: Tensor, sizes) -> Domains:
        splits = tuple(torch.zeros(1, n, dtype=torch.int8) for n in sizes)
        d = lo.numel()
        return cls(
            lo[None],
            hi[None],
            open_terms,
            splits,
            torch.zeros(1, dtype=torch.long),
            torch.full((1,), -torch.inf, dtype=lo.dtype),
            torch.zeros(1, d, dtype=lo.dtype),
            torch.zeros(1, dtype=torch.bool),
            torch.zeros(1, dtype=torch.long),
        )

    def __len__(self) -> int:
        return self.lo.shape[0]

    def select(self, idx) -> Domains:
        return Domains(
            self.lo[idx],
            self.hi[idx],
            self.open[idx],
            tuple(s[idx] for s in self.splits),
            self.depth[idx],
            self.margin[idx],
            self.a_worst[idx],
            self.fixed[idx],
            self.term[idx],
            None if self.pre is None else tuple((lo[idx], hi[idx]) for lo, hi in self.pre),
            _rows(self.alphas, idx),
            _rows(self.betas, idx),
        )

    def pop(self, n: int) -> Domains:
        """The last `n` domains (depth first keeps the queue small)."""
        k = max(len(self) - n, 0)
        out = self.select(slice(k, None))
        self._assign(self.select(slice(0, k)))
        return out

    def push(self, other: Domains) -> None:
        self._assign(cat([self, other]))

    def worst(self, n: int) -> Domains:
        """Up to `n` domains with the lowest margins (a copy; the queue is unchanged)."""
        k = min(n, len(self))
        return self.select(torch.topk(-self.margin, k).indices)

    def _assign(self, other: Domains) -> None:
        for f in attrs.fields(Domains):
            setattr(self, f.name, getattr(other, f.name))


def cat(parts: list[Domains]) -> Domains:
    first = parts[0]
    return Domains(
        torch.cat([p.lo for p in parts]),
        torch.cat([p.hi for p in parts]),
        torch.cat([p.open for p in parts]),
        tuple(torch.cat([p.splits[i] for p in parts]) for i in range(len(first.splits))),
        torch.cat([p.depth for p in parts]),
        torch.cat([p.margin for p in parts]),
        torch.cat([p.a_worst for p in parts]),
        torch.cat([p.fixed for p in parts]),
        torch.cat([p.term for p in parts]),
        _cat_pre([p.pre for p in parts]),
        _cat_layers([p.alphas for p in parts]),
        _cat_layers([p.betas for p in parts]),
    )


def _rows(layers: tuple[Tensor, ...] | None, idx) -> tuple[Tensor, ...] | None:
    return None if layers is None else tuple(t[idx] for t in layers)


def _cat_layers(parts: list[tuple[Tensor, ...] | None]) -> tuple[Tensor, ...] | None:
    """Per layer, the parts' rows in order; None unless every part has them."""
    if any(p is None for p in parts):
        return None
    return tuple(torch.cat(layer) for layer in zip(*parts, strict=True))


def _cat_pre(parts) -> tuple[tuple[Tensor, Tensor], ...] | None:
    if any(p is None for p in parts):
        return None
    return tuple(
        (torch.cat([b[0] for b in layer]), torch.cat([b[1] for b in layer]))
        for layer in zip(*parts, strict=True)
    )


def term_margins(problem: Problem, lower: Tensor, open_terms: Tensor) -> Tensor:
    """(N, T): per term, the best atom's `lower - s` (> 0, or >= 0 for a strict atom: the term
    is ruled out); +inf for terms already closed."""
    member = torch.from_numpy(problem.member)  # (T, S)
    gap = (lower - torch.from_numpy(problem.s).to(lower.dtype))[:, None, :]  # (N, 1, S)
    per = torch.where(member[None], gap, torch.tensor(-torch.inf, dtype=lower.dtype))
    best = per.amax(2)
    return torch.where(open_terms, best, torch.tensor(torch.inf, dtype=lower.dtype))


def worst_rows(problem: Problem, lower: Tensor, open_terms: Tensor) -> Tensor:
    """(N,) per domain, the atom row of the open term whose best atom is furthest from refuting
    it (the row whose bound must rise for the domain to close)."""
    margins = term_margins(problem, lower, open_terms)  # (N, T)
    term = margins.argmin(1)
    member = torch.from_numpy(problem.member)[term]  # (N, S)
    gap = lower - torch.from_numpy(problem.s).to(lower.dtype)
    gap = torch.where(member, gap, torch.tensor(-torch.inf, dtype=lower.dtype))
    return gap.argmax(1)


def fixed_phases(pre, splits, n: int) -> Tensor:
    """(N,) bool: no ReLU is unstable and free (all N of a network without ReLUs)."""
    out = torch.ones(n, dtype=torch.bool)
    for (low, up), s in zip(pre, splits, strict=True):
        out &= ~((low < 0) & (up > 0) & (s == 0)).any(1)
    return out


def as_numpy(t: Tensor) -> np.ndarray:
    return t.detach().numpy()
