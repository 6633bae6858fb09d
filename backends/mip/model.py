"""A solver-independent mixed-integer program: what the formulation builds and solvers translate.

Besides linear rows it keeps two structured constraint kinds so that each solver can encode them
its own way: complementarity pairs ``x_i * x_j = 0`` (SOS1 in Gurobi, a binary and big-M with
the variables' finite upper bounds elsewhere) and bilinear equalities ``x_w = x_x * x_y``
(NonConvex quadratic constraints in Gurobi, McCormick relaxations elsewhere).
"""

from __future__ import annotations

import attrs
import numpy as np


@attrs.frozen
class Expr:
    """Affine expressions ``A @ vars + c``: ``A`` is ``(m, n_vars_at_creation)``; ``c`` is ``(m,)``."""

    a: np.ndarray
    c: np.ndarray

    def padded(self, n: int) -> np.ndarray:
        return np.pad(self.a, ((0, 0), (0, n - self.a.shape[1])))

    def row(self, k: int) -> Expr:
        return Expr(self.a[k : k + 1], self.c[k : k + 1])

    def value(self, x: np.ndarray) -> np.ndarray:
        return self.a @ x[: self.a.shape[1]] + self.c


@attrs.define
class MipModel:
    """Maximise ``objective @ x + objective_const`` subject to rows, complementarity, bilinear."""

    lb: list[float] = attrs.Factory(list)
    ub: list[float] = attrs.Factory(list)
    integer: list[bool] = attrs.Factory(list)
    rows: list[tuple[np.ndarray, np.ndarray, float, float]] = attrs.Factory(list)
    complementarity: list[tuple[int, int]] = attrs.Factory(list)
    bilinear: list[tuple[int, int, int]] = attrs.Factory(list)
    objective: np.ndarray = attrs.field(factory=lambda: np.zeros(0))
    objective_const: float = 0.0

    @property
    def n(self) -> int:
        return len(self.lb)

    def var(self, lb: float, ub: float, integer: bool = False) -> int:
        if not lb <= ub:
            raise ValueError(f"empty variable domain [{lb}, {ub}]")
        self.lb.append(float(lb))
        self.ub.append(float(ub))
        self.integer.append(integer)
        return self.n - 1

    def vars(self, lb: np.ndarray, ub: np.ndarray) -> np.ndarray:
        return np.array([self.var(lo, hi) for lo, hi in zip(lb, ub, strict=True)], dtype=np.int64)

    def add_row(self, coefs: np.ndarray, lo: float, hi: float) -> None:
        """``lo <= coefs @ x <= hi`` with ``coefs`` dense over the first ``len(coefs)`` variables."""
        idx = np.flatnonzero(coefs)
        self.rows.append((idx, coefs[idx].astype(np.float64), float(lo), float(hi)))

    def add_expr_row(
        self, expr: Expr, k: int, extra: dict[int, float], lo: float, hi: float
    ) -> None:
        """``lo <= expr[k] + sum extra[j] x_j <= hi`` (the constant of ``expr`` moved across)."""
        coefs = np.zeros(self.n)
        coefs[: expr.a.shape[1]] = expr.a[k]
        for j, v in extra.items():
            coefs[j] += v
        self.add_row(coefs, lo - expr.c[k], hi - expr.c[k])

    def set_objective(self, expr: Expr) -> None:
        self.objective = expr.padded(self.n)[0].astype(np.float64)
        self.objective_const = float(expr.c[0])

    def stats(self) -> dict[str, int]:
        return {
            "variables": self.n,
            "binaries": int(sum(self.integer)),
            "rows": len(self.rows),
            "complementarity": len(self.complementarity),
            "bilinear": len(self.bilinear),
        }

    def objective_value(self, x: np.ndarray) -> float:
        return float(self.objective @ x[: self.n] + self.objective_const)
