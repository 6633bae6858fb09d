"""A `require outputs` property as tensors: where it fails is an `or` of `and`s of atoms
`g . y <= s` (or `< s`), one row of the C matrix per distinct atom.

A term (an `and`) is ruled out on a domain when one of its atoms cannot hold there: the lower
bound of `g . y` exceeds `s` (reaches `s` for a strict atom). The property holds on the domain
when every term is ruled out. A point violates it when all atoms of some term hold there.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
from torch import Tensor

from threatlang.errors import UsageError
from threatlang.ir.properties import OutputsSatisfy, Relation, violations


class NumericalTrouble(Exception):
    """A bound that cannot be trusted: the search ends `unknown` with this reason."""


MAX_TERMS = 4096


@attrs.frozen(eq=False)
class Problem:
    g: np.ndarray  # (S, outputs) float64: atom coefficients
    s: np.ndarray  # (S,) right-hand sides
    strict: np.ndarray  # (S,) bool
    member: np.ndarray  # (T, S) bool: atom k belongs to term i

    @property
    def terms(self) -> int:
        return self.member.shape[0]

    def c(self) -> Tensor:
        return torch.from_numpy(self.g)

    def refuted(self, lower: Tensor) -> Tensor:
        """(N, S) bool: the atom cannot hold anywhere on the domain, given lower bounds.

        Every engine's bound (CROWN, the chain engine, alpha/beta) reaches a decision only
        through here, so a NaN or +inf bound from any of them stops the search (raises
        `NumericalTrouble`) instead of being read as a comparison."""
        if bool(torch.isnan(lower).any()) or bool(torch.isposinf(lower).any()):
            raise NumericalTrouble("the bound engine returned NaN or +inf bounds")
        s = torch.from_numpy(self.s).to(lower.dtype)
        strict = torch.from_numpy(self.strict)
        return torch.where(strict, lower >= s, lower > s)

    def closed_terms(self, lower: Tensor) -> Tensor:
        """(N, T) bool: the term is ruled out on the domain."""
        refuted = self.refuted(lower).to(torch.float64)
        return (refuted @ torch.from_numpy(self.member.T.astype(np.float64))) > 0

    def slack(self, y: Tensor) -> Tensor:
        """(N,) how far the point is from violating (<= 0: some term's atoms all hold, up to
        strictness; see `violated`). Differentiable, for the attack."""
        g, s = torch.from_numpy(self.g).to(y.dtype), torch.from_numpy(self.s).to(y.dtype)
        excess = y @ g.T - s  # (N, S): > 0 where the atom fails
        member = torch.from_numpy(self.member)
        per_term = torch.where(member[None], excess[:, None, :], torch.tensor(-torch.inf))
        return per_term.amax(2).amin(1)

    def violated(self, y: np.ndarray) -> np.ndarray:
        """(N,) bool, exactly (float64): the outputs fall in the unsafe set."""
        v = np.asarray(y, dtype=np.float64) @ self.g.T
        holds = np.where(self.strict, v < self.s, v <= self.s)  # (N, S)
        return (holds[:, None, :] | ~self.member[None]).all(2).any(1)


def build_problem(prop: OutputsSatisfy, outputs: int) -> Problem:
    """The tensors of `prop` for a network with `outputs` outputs (`UsageError` if too few)."""
    if prop.outputs > outputs:
        raise UsageError(
            f"the property constrains y[{prop.outputs - 1}], but the network has {outputs} outputs."
        )
    try:
        terms = violations(prop.formula, MAX_TERMS)
    except ValueError as err:
        raise UsageError(f"{err}.") from None
    atoms: dict[tuple, int] = {}
    rows, member = [], []
    for term in terms:
        idx = []
        for c in term:
            sign = 1.0 if c.op in (Relation.LE, Relation.LT) else -1.0
            g = np.zeros(outputs)
            g[: len(c.coeffs)] = sign * np.asarray(c.coeffs)
            key = (tuple(g), sign * c.rhs, c.op in (Relation.LT, Relation.GT))
            if key not in atoms:
                atoms[key] = len(rows)
                rows.append(key)
            idx.append(atoms[key])
        member.append(idx)
    m = np.zeros((len(member), len(rows)), dtype=bool)
    for i, idx in enumerate(member):
        m[i, idx] = True
    return Problem(
        g=np.array([r[0] for r in rows], dtype=np.float64),
        s=np.array([r[1] for r in rows], dtype=np.float64) + 0.0,
        strict=np.array([r[2] for r in rows], dtype=bool),
        member=m,
    )
