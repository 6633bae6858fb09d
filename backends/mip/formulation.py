"""The certification MIP for one profile and one agent (dissertation §4.2.3, eqs. 4.3-4.6).

Variables are the agent's misreport ``b_i`` in a box, every *unstable* ReLU (big-M encoding
4.4 with a binary; stable ReLUs are linear or zero and need none), the sparsemax KKT system
(4.6; complementarity kept structured), and for the fractional-IR payment two bilinear
equalities ``t_j = a_ij b_ij`` and ``p_i = q_i * sum_j t_j`` (§4.3.2). The objective is the
agent's utility at its true values: ``sum_j a_ij v_ij - p_i``. Every constraint is exact: the
feasible set is the graph of the network on the box, so the optimum is the best misreport.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch

from .bounds import BoundMethod, layer_bounds
from .mechanisms import Mechanism, PaymentKind
from .model import Expr, MipModel

_PAD = 1e-9  # widen every bound by this (relative) so float round-off never hides a sign change


@attrs.frozen
class Formulation:
    model: MipModel
    bid_vars: np.ndarray  # (items,) variable index of each misreported bid
    allocation: Expr  # (items,) the agent's allocation
    payment: Expr  # (1,) the agent's payment
    utility: Expr  # (1,) the objective
    unstable: int  # ReLUs that needed a binary
    relus: int


def _neg(e: Expr) -> Expr:
    return Expr(-e.a, -e.c)


def _relu(model: MipModel, z: Expr, lo: np.ndarray, hi: np.ndarray) -> tuple[Expr, int]:
    """``max(z, 0)`` per row: zero, identity, or big-M with a binary when ``lo < 0 < hi``."""
    a = np.zeros((z.a.shape[0], model.n + 2 * z.a.shape[0]))
    c = np.zeros(z.a.shape[0])
    unstable = 0
    nz = _neg(z)
    for k in range(z.a.shape[0]):
        if hi[k] <= 0:
            continue
        if lo[k] >= 0:
            a[k, : z.a.shape[1]] = z.a[k]
            c[k] = z.c[k]
            continue
        unstable += 1
        x = model.var(0.0, hi[k])
        d = model.var(0.0, 1.0, integer=True)
        model.add_expr_row(nz, k, {x: 1.0}, 0.0, np.inf)  # x >= z
        model.add_row(_dense(model, {x: 1.0, d: -hi[k]}), -np.inf, 0.0)  # x <= u d
        model.add_expr_row(nz, k, {x: 1.0, d: -lo[k]}, -np.inf, -lo[k])  # x <= z - l(1-d)
        a[k, x] = 1.0
    return Expr(a[:, : model.n], c), unstable


def _dense(model: MipModel, coefs: dict[int, float]) -> np.ndarray:
    row = np.zeros(model.n)
    for j, v in coefs.items():
        row[j] += v
    return row


def _affine(h: Expr, w: np.ndarray, b: np.ndarray, n: int) -> Expr:
    return Expr(w @ h.padded(n), w @ h.c + b)


def _sparsemax(model: MipModel, logits: Expr, lo: np.ndarray, hi: np.ndarray) -> Expr:
    """KKT of the projection onto the simplex for one item: ``z = L - tau + mu``, ``z, mu >= 0``,
    ``z * mu = 0``, ``sum z = 1``. Bounds: ``tau in [max lo - 1, max hi - 1/K]``."""
    k_count = logits.a.shape[0]
    tau_lo, tau_hi = lo.max() - 1.0, hi.max() - 1.0 / k_count
    tau = model.var(tau_lo, tau_hi)
    z_vars: list[int | None] = []
    for k in range(k_count):
        if hi[k] <= tau_lo:  # never in the support: z = 0 and tau >= L_k
            model.add_expr_row(_neg(logits), k, {tau: 1.0}, 0.0, np.inf)
            z_vars.append(None)
            continue
        z = model.var(max(0.0, lo[k] - tau_hi), min(1.0, hi[k] - tau_lo))
        mu_hi = tau_hi - lo[k]
        extra = {z: 1.0, tau: 1.0}
        if mu_hi > 0:  # may leave the support: complementarity z * mu = 0
            mu = model.var(0.0, mu_hi)
            extra[mu] = -1.0
            model.complementarity.append((z, mu))
        model.add_expr_row(_neg(logits), k, extra, 0.0, 0.0)
        z_vars.append(z)
    model.add_row(_dense(model, {z: 1.0 for z in z_vars if z is not None}), 1.0, 1.0)
    a = np.zeros((k_count, model.n))
    for k, z in enumerate(z_vars):
        if z is not None:
            a[k, z] = 1.0
    return Expr(a, np.zeros(k_count))


@attrs.frozen
class NetworkCopy:
    """One copy of the network inside a MIP: the agent's allocation and payment as expressions."""

    allocation: Expr  # (items,)
    payment: Expr  # (1,)
    unstable: int
    relus: int


def padded_bounds(layers, lo_in: np.ndarray, hi_in: np.ndarray, method: BoundMethod):
    """Pre-activation bounds of every layer over the input box, widened by ``_PAD``."""
    bounds = layer_bounds(
        layers,
        torch.from_numpy(lo_in.reshape(1, -1)),
        torch.from_numpy(hi_in.reshape(1, -1)),
        method,
    )
    bounds = [(lo[0].numpy(), hi[0].numpy()) for lo, hi in bounds]
    return [(lo - _PAD * (1 + np.abs(lo)), hi + _PAD * (1 + np.abs(hi))) for lo, hi in bounds]


def network_copy(
    model: MipModel,
    mechanism: Mechanism,
    layers,
    bounds,
    inputs: Expr,
    agent: int,
    bid_vars: np.ndarray,
) -> NetworkCopy:
    """Encode the network at the input expression ``inputs`` (the flattened bid profile; the
    big-M constants ``bounds`` must hold over every input it can take). ``bid_vars``: the
    agent's reported bids (the fractional payment multiplies its allocation by them)."""
    cfg = mechanism.config
    n_agents, n_items = cfg.agents, cfg.items
    h, unstable, relus = inputs, 0, 0
    for (w, b), (lo, hi) in zip(layers[:-1], bounds[:-1], strict=True):
        z = _affine(h, w.numpy(), b.numpy(), model.n)
        h, u = _relu(model, z, lo, hi)
        unstable, relus = unstable + u, relus + len(lo)
    head = _affine(h, layers[-1][0].numpy(), layers[-1][1].numpy(), model.n)
    head_lo, head_hi = bounds[-1]

    alloc_rows = []
    for j in range(n_items):
        idx = np.arange(n_agents + 1) * n_items + j
        sm = _sparsemax(model, Expr(head.a[idx], head.c[idx]), head_lo[idx], head_hi[idx])
        alloc_rows.append(Expr(sm.padded(model.n)[agent : agent + 1], sm.c[agent : agent + 1]))
    n = model.n
    alloc = Expr(
        np.stack([r.padded(n)[0] for r in alloc_rows]), np.array([r.c[0] for r in alloc_rows])
    )

    k_pay = (n_agents + 1) * n_items + agent
    raw = head.row(k_pay)
    r_lo, r_hi = head_lo[k_pay : k_pay + 1], head_hi[k_pay : k_pay + 1]
    if cfg.payment is PaymentKind.FREE:
        pay = raw
        if mechanism.clip_payments:
            pay, u = _relu(model, raw, r_lo, r_hi)
            unstable += u
    else:
        pay, u = _fractional_payment(model, raw, r_lo, r_hi, alloc, bid_vars)
        unstable += u
    return NetworkCopy(alloc, pay, unstable, relus)


def float_layers(mechanism: Mechanism):
    cfg = mechanism.config
    if not cfg.certifiable:
        raise ValueError(f"not certifiable: {cfg.allocation.value} / {cfg.payment.value}")
    return [(w.double(), b.double()) for w, b in mechanism.affine_layers()]


def formulate(
    mechanism: Mechanism,
    profile: np.ndarray,
    agent: int,
    box_lo: np.ndarray,
    box_hi: np.ndarray,
    method: BoundMethod = BoundMethod.LINEAR,
) -> Formulation:
    """Maximise ``agent``'s utility (true values ``profile[agent]``) over misreports in the box."""
    cfg = mechanism.config
    layers = float_layers(mechanism)
    n_agents, n_items = cfg.agents, cfg.items
    lo_in = np.array(profile, dtype=np.float64).copy()
    hi_in = lo_in.copy()
    lo_in[agent], hi_in[agent] = box_lo, box_hi
    bounds = padded_bounds(layers, lo_in, hi_in, method)

    model = MipModel()
    bid_vars = model.vars(np.asarray(box_lo, float), np.asarray(box_hi, float))
    a_in = np.zeros((n_agents * n_items, model.n))
    a_in[agent * n_items + np.arange(n_items), bid_vars] = 1.0
    c_in = lo_in.reshape(-1).copy()
    c_in[agent * n_items : (agent + 1) * n_items] = 0.0
    net = network_copy(model, mechanism, layers, bounds, Expr(a_in, c_in), agent, bid_vars)
    alloc, pay = net.allocation, net.payment
    values = np.asarray(profile, dtype=np.float64)[agent]
    n = model.n
    util = Expr(
        (values @ alloc.padded(n) - pay.padded(n)[0])[None], np.array([values @ alloc.c - pay.c[0]])
    )
    model.set_objective(util)
    return Formulation(model, bid_vars, alloc, pay, util, net.unstable, net.relus)


def _fractional_payment(
    model: MipModel,
    raw: Expr,
    r_lo: np.ndarray,
    r_hi: np.ndarray,
    alloc: Expr,
    bid_vars: np.ndarray,
) -> tuple[Expr, int]:
    """``p = clamp(raw + 1/2, 0, 1) * sum_j a_j b_j`` = ``(relu(r) - relu(r - 1)) * y``."""
    r = Expr(raw.a, raw.c + 0.5)
    q1, u1 = _relu(model, r, r_lo + 0.5, r_hi + 0.5)
    q2, u2 = _relu(model, Expr(r.a, r.c - 1.0), r_lo - 0.5, r_hi - 0.5)
    q_expr = Expr(q1.padded(model.n) - q2.padded(model.n), q1.c - q2.c)
    q = model.var(float(np.clip(r_lo[0] + 0.5, 0, 1)), float(np.clip(r_hi[0] + 0.5, 0, 1)))
    model.add_expr_row(_neg(q_expr), 0, {q: 1.0}, 0.0, 0.0)
    y_terms, y_lo, y_hi = [], 0.0, 0.0
    for j, b in enumerate(bid_vars):
        nz = np.flatnonzero(alloc.a[j])
        if len(nz) == 0:  # allocation identically zero on the box
            continue
        (a_var,) = nz
        corners = [
            x * y for x in (model.lb[a_var], model.ub[a_var]) for y in (model.lb[b], model.ub[b])
        ]
        t = model.var(min(corners), max(corners))
        model.bilinear.append((t, int(a_var), int(b)))
        y_terms.append(t)
        y_lo, y_hi = y_lo + min(corners), y_hi + max(corners)
    y = model.var(y_lo, y_hi)
    model.add_row(_dense(model, {y: 1.0, **{t: -1.0 for t in y_terms}}), 0.0, 0.0)
    corners = [x * v for x in (model.lb[q], model.ub[q]) for v in (y_lo, y_hi)]
    p = model.var(min(corners), max(corners))
    model.bilinear.append((p, q, y))
    a = np.zeros((1, model.n))
    a[0, p] = 1.0
    return Expr(a, np.zeros(1)), u1 + u2
