"""A cell's worst-case regret bounded through the convexity of the menu (issue 22).

For a fixed misreport ``b`` and other bids ``o`` the agent's utility ``a(b, o) . v - p(b, o)`` is
affine in its true values ``v``, so the menu's utility ``U(v, o) = max_b u(b, o; v)`` is convex
in ``v``. The regret is ``U(v, o) - u_T(v, o)`` (``u_T``: the truthful utility). For a cell
``V x O`` of (values, other bids) and any slopes ``(g, h)``:

* ``c0 <= min over the cell of u_T(v, o) - g . v - h . o``: a MIP with ONE copy of the network
  over the cell's own small box (tight big-M, few unstable ReLUs);
* ``M(c) >= max over b and o in O of a(b, o) . c - p(b, o) - h . o`` at each corner ``c`` of
  ``V``: the chapter's per-profile MIP with the values fixed at ``c`` (the others in ``O``);
* then ``regret <= max_c M(c) - g . c - c0`` over the whole cell: ``max_{b, o} [a . v - p - h . o]
  - g . v`` is convex in ``v`` (a max of affine functions), so its max over the box is at a
  corner.

Neither MIP couples two copies of the network or multiplies two variables of the objective
(the joint MIP's ``v . a(b)``), and with one bidder the corner MIPs do not depend on the cell,
so neighbouring cells share them. The bound's only slack is how far ``u_T`` bends inside the
cell; ``g, h`` are a least-squares plane through ``u_T`` at sample points of the cell, which
makes it second order in the cell's width where ``u_T`` is smooth.
"""

from __future__ import annotations

import itertools

import attrs
import numpy as np
import torch

from .bounds import BoundMethod
from .formulation import NetworkCopy, network_copy, padded_bounds
from .mechanisms import Mechanism, utilities
from .model import Expr, MipModel


@attrs.frozen
class OneCopy:
    """One copy of the network over a box of the agent's bids and the other bids."""

    model: MipModel
    own: np.ndarray  # (items,) variables of the agent's bids
    others: np.ndarray  # (agents - 1, items) variables of the other bids
    net: NetworkCopy


def one_copy(
    mech: Mechanism,
    layers,
    agent: int,
    own_lo: np.ndarray,
    own_hi: np.ndarray,
    others_lo: np.ndarray,
    others_hi: np.ndarray,
    method: BoundMethod,
) -> OneCopy:
    """The network with the agent's bids in ``[own_lo, own_hi]`` and the others' in their box;
    the big-M constants come from bounds over that box only."""
    cfg = mech.config
    agents, items = cfg.agents, cfg.items
    lo = _profile(agent, own_lo, others_lo)
    hi = _profile(agent, own_hi, others_hi)
    bounds = padded_bounds(layers, lo, hi, method)
    model = MipModel()
    own = model.vars(np.asarray(own_lo, float), np.asarray(own_hi, float))
    others = model.vars(others_lo.reshape(-1), others_hi.reshape(-1)).reshape(agents - 1, items)
    a = np.zeros((agents * items, model.n))
    rows = iter(others)
    for i in range(agents):
        a[i * items + np.arange(items), own if i == agent else next(rows)] = 1.0
    net = network_copy(model, mech, layers, bounds, Expr(a, np.zeros(agents * items)), agent, own)
    return OneCopy(model, own, others, net)


def _profile(agent: int, own, others) -> np.ndarray:
    rows = list(np.asarray(others, float))
    return np.stack(rows[:agent] + [np.asarray(own, float)] + rows[agent:]).reshape(-1)


def _linear(model: MipModel, coefs: dict[int, float], const: float = 0.0) -> Expr:
    row = np.zeros(model.n)
    for j, c in coefs.items():
        row[j] += c
    return Expr(row[None], np.array([const]))


@attrs.frozen
class Simplex:
    """One simplex of the Kuhn triangulation of a box of values: in the box's unit
    coordinates ``s`` (``1 - s`` along the ``flip`` axes) it is ``s[order[0]] >= s[order[1]]
    >= ...``; its vertices are the box corners ``0, e[order[0]], e[order[0]] + e[order[1]],
    ...``. The ``d!`` orders of one flip cover the box."""

    order: tuple[int, ...]
    flip: tuple[bool, ...]

    def vertex_bits(self) -> list[tuple[bool, ...]]:
        """Each vertex as the corner's "upper side" per axis, first to last."""
        on = [False] * len(self.order)
        out = [self._flipped(on)]
        for k in self.order:
            on[k] = True
            out.append(self._flipped(on))
        return out

    def _flipped(self, on: list[bool]) -> tuple[bool, ...]:
        return tuple(bool(x) != f for x, f in zip(on, self.flip, strict=True))

    def interpolant(self, lo: np.ndarray, hi: np.ndarray, heights: list[float]):
        """``(w, c)``: the affine function ``w . v + c`` equal to ``heights`` at the vertices."""
        width = hi - lo
        w, c = np.zeros(len(lo)), heights[0]
        for k, (prev, nxt) in enumerate(zip(heights[:-1], heights[1:], strict=True)):
            j = self.order[k]
            step = nxt - prev  # the rise along s'_j from 0 to 1
            if self.flip[j]:  # s'_j = (hi_j - v_j) / width_j
                w[j] -= step / width[j]
                c += step * hi[j] / width[j]
            else:  # s'_j = (v_j - lo_j) / width_j
                w[j] += step / width[j]
                c -= step * lo[j] / width[j]
        return w, c

    def rows(self, lo: np.ndarray, hi: np.ndarray) -> list[np.ndarray]:
        """``r . v <= r0`` as ``(r, r0)`` pairs, packed ``[r..., r0]``: ``s'[order[k+1]] <=
        s'[order[k]]``."""
        width, out = hi - lo, []
        for j, k in zip(self.order[:-1], self.order[1:], strict=True):
            r, r0 = np.zeros(len(lo)), 0.0
            for axis, sign in ((k, 1.0), (j, -1.0)):  # sign * s'_axis, summed, <= 0
                if self.flip[axis]:
                    r[axis] -= sign / width[axis]
                    r0 -= sign * hi[axis] / width[axis]
                else:
                    r[axis] += sign / width[axis]
                    r0 += sign * lo[axis] / width[axis]
            out.append(np.append(r, r0))
        return out

    def contains(self, lo: np.ndarray, hi: np.ndarray, v: np.ndarray, tol: float = 1e-12):
        """Which of the points ``v`` ``(B, d)`` lie in the simplex."""
        ok = np.ones(len(v), dtype=bool)
        for packed in self.rows(lo, hi):
            ok &= v @ packed[:-1] <= packed[-1] + tol
        return ok


def triangulation(items: int, flip: tuple[bool, ...]) -> list[Simplex]:
    return [Simplex(order, flip) for order in itertools.permutations(range(items))]


def simplex_model(
    mech: Mechanism,
    layers,
    agent: int,
    values_lo: np.ndarray,
    values_hi: np.ndarray,
    others_lo: np.ndarray,
    others_hi: np.ndarray,
    simplex: Simplex,
    heights: list[float],
    h: np.ndarray,
    method: BoundMethod,
) -> tuple[OneCopy, Expr]:
    """Maximise ``l(v) + h . o - u_T(v, o)`` over ``v`` in the simplex and ``o`` in its box,
    ``l`` the affine interpolant of ``heights`` (the corner MIPs' bounds) at the simplex's
    vertices. Its bound bounds the regret there. Returns the copy and ``u_T`` as an
    expression (for the residual check)."""
    cp = one_copy(mech, layers, agent, values_lo, values_hi, others_lo, others_hi, method)
    model, alloc = cp.model, cp.net.allocation
    value: dict[int, float] = {}
    for j, v in enumerate(cp.own):  # a_j * v_j: both variables
        nz = np.flatnonzero(alloc.a[j])
        if len(nz) == 0:
            continue
        (a_var,) = nz
        corners = [
            x * y for x in (model.lb[a_var], model.ub[a_var]) for y in (model.lb[v], model.ub[v])
        ]
        t = model.var(min(corners), max(corners))
        model.bilinear.append((t, int(a_var), int(v)))
        value[t] = value.get(t, 0.0) + float(alloc.a[j, a_var])
    for packed in simplex.rows(values_lo, values_hi):
        model.add_row(
            _linear(model, dict(zip(cp.own.tolist(), packed[:-1], strict=True))).a[0],
            -np.inf,
            packed[-1],
        )
    n = model.n
    u_t = Expr(_linear(model, value).a - cp.net.payment.padded(n), -cp.net.payment.c)
    w, c = simplex.interpolant(values_lo, values_hi, heights)
    coefs = {
        **dict(zip(cp.own.tolist(), w, strict=True)),
        **dict(zip(cp.others.reshape(-1).tolist(), h, strict=True)),
    }
    lin = _linear(model, coefs, float(c))
    model.set_objective(Expr(lin.a - u_t.a, lin.c - u_t.c))
    return cp, u_t


def corner_model(
    mech: Mechanism,
    layers,
    agent: int,
    corner: np.ndarray,
    low: float,
    high: float,
    others_lo: np.ndarray,
    others_hi: np.ndarray,
    h: np.ndarray,
    method: BoundMethod,
) -> tuple[OneCopy, Expr]:
    """Maximise ``a(b, o) . c - p(b, o) - h . o`` over every misreport and ``o`` in its box
    (the values fixed at the corner ``c``). Returns the copy and the utility expression."""
    items = mech.config.items
    lo, hi = np.full(items, float(low)), np.full(items, float(high))
    cp = one_copy(mech, layers, agent, lo, hi, others_lo, others_hi, method)
    model, net = cp.model, cp.net
    n = model.n
    util = Expr(
        (corner @ net.allocation.padded(n) - net.payment.padded(n)[0])[None],
        np.array([corner @ net.allocation.c - net.payment.c[0]]),
    )
    tilt = _linear(model, dict(zip(cp.others.reshape(-1).tolist(), -h, strict=True)))
    model.set_objective(Expr(util.a + tilt.a, util.c))
    return cp, util


def truthful_utility(
    mech: Mechanism, agent: int, values: np.ndarray, others: np.ndarray
) -> np.ndarray:
    """The network's ``u_T`` at ``B`` points: values ``(B, items)``, others ``(B, agents-1, items)``."""
    v = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    rows = list(torch.from_numpy(np.ascontiguousarray(others, dtype=np.float64)).unbind(1))
    prof = torch.stack(rows[:agent] + [v] + rows[agent:], dim=1)
    with torch.no_grad():
        u, _, _ = utilities(mech, prof, prof)
    return u[:, agent].numpy()
