"""Ground truth for branch and bound: exact MIP maxima (HiGHS) of a linear function of a small
ReLU network's outputs over a box, dense grids on 2-D inputs, and a reference evaluator of
`require outputs` formulas written independently of the backend's tensors."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from threatlang.ir.properties import Conjunction, LinearConstraint, Relation


def holds(formula, y: np.ndarray) -> bool:
    """Does the formula hold at outputs `y` (exact float64)?"""
    if isinstance(formula, LinearConstraint):
        v = float(np.dot(formula.coeffs, y[: len(formula.coeffs)]))
        return {
            Relation.LE: v <= formula.rhs,
            Relation.LT: v < formula.rhs,
            Relation.GE: v >= formula.rhs,
            Relation.GT: v > formula.rhs,
        }[formula.op]
    parts = [holds(p, y) for p in formula.parts]
    return all(parts) if isinstance(formula, Conjunction) else any(parts)


def random_net(seed: int, sizes=(2, 16, 16, 2)) -> nn.Sequential:
    torch.manual_seed(seed)
    mods: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        mods.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods).eval()


def trained_net(seed: int, steps: int = 150) -> nn.Sequential:
    """A small net fitted to a smooth 2-D target (non-trivial level sets)."""
    net = random_net(seed, (2, 20, 20, 3))
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(steps):
        x = torch.rand(128, 2, generator=gen) * 2 - 1
        t = torch.stack(
            [torch.sin(3 * x[:, 0]) * x[:, 1], torch.cos(2 * x.sum(1)), x[:, 0] ** 2 - x[:, 1]], 1
        )
        loss = ((net(x) - t) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def grid_outputs(net: nn.Module, lo, hi, n: int = 301) -> np.ndarray:
    g0 = torch.linspace(float(lo[0]), float(hi[0]), n, dtype=torch.float64)
    g1 = torch.linspace(float(lo[1]), float(hi[1]), n, dtype=torch.float64)
    x = torch.stack(torch.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        return copy.deepcopy(net).double()(x).numpy()


def mip_max(net: nn.Sequential, lo, hi, c) -> float:
    """max of c . net(x) over lo <= x <= hi, exactly (big-M MILP with IBP bounds, HiGHS)."""
    best = mip_optimum(net, lo, hi, c, maximize=True)
    assert best is not None
    return best


def mip_optimum(net: nn.Sequential, lo, hi, c, splits=None, maximize=True) -> float | None:
    """max (or min) of c . net(x) over the box, with the ReLUs in `splits` (per layer, +1 /
    -1 / 0) fixed active / inactive: a big-M MILP with IBP bounds, HiGHS; None when the split
    domain is empty."""
    import highspy

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", 0.0)
    h.setOptionValue("mip_abs_gap", 1e-10)
    inf = highspy.kHighsInf
    cols = 0

    def var(lb, ub, integer=False):
        nonlocal cols
        h.addVar(lb, ub)
        if integer:
            h.changeColIntegrality(cols, highspy.HighsVarType.kInteger)
        cols += 1
        return cols - 1

    def row(lb, ub, idx, vals):
        h.addRow(lb, ub, len(idx), np.array(idx, dtype=np.int32), np.array(vals, dtype=np.float64))

    x = [var(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]
    lb, ub = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    layers = [m for m in net if isinstance(m, nn.Linear)]
    for k, layer in enumerate(layers):
        w = layer.weight.detach().double().numpy()
        b = layer.bias.detach().double().numpy()
        zl = w.clip(min=0) @ lb + w.clip(max=0) @ ub + b
        zu = w.clip(min=0) @ ub + w.clip(max=0) @ lb + b
        z = []
        for j in range(w.shape[0]):
            zj = var(-inf, inf)
            row(b[j], b[j], [zj, *x], [1.0, *(-w[j])])  # z = W x + b
            z.append(zj)
        if k == len(layers) - 1:
            out = z
            break
        a = []
        split = np.zeros(w.shape[0]) if splits is None else splits[k]
        for j in range(w.shape[0]):
            aj = var(0.0, max(zu[j], 0.0))
            if split[j] > 0:
                row(0.0, inf, [z[j]], [1.0])
                row(0.0, 0.0, [aj, z[j]], [1.0, -1.0])
            elif split[j] < 0:
                row(-inf, 0.0, [z[j]], [1.0])
                row(0.0, 0.0, [aj], [1.0])
            elif zl[j] >= 0:
                row(0.0, 0.0, [aj, z[j]], [1.0, -1.0])
            elif zu[j] > 0:
                d = var(0.0, 1.0, integer=True)
                row(0.0, inf, [aj, z[j]], [1.0, -1.0])  # a >= z
                row(-inf, -zl[j], [aj, z[j], d], [1.0, -1.0, -zl[j]])  # a <= z - l (1 - d)
                row(-inf, 0.0, [aj, d], [1.0, -zu[j]])  # a <= u d
            else:
                row(0.0, 0.0, [aj], [1.0])
            a.append(aj)
        x, lb, ub = a, zl.clip(min=0), zu.clip(min=0)
    for j, cj in enumerate(c):
        h.changeColCost(out[j], float(cj))
    if maximize:
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    h.run()
    status = h.modelStatusToString(h.getModelStatus())
    if status == "Infeasible":
        return None
    assert status == "Optimal", status
    return float(h.getInfo().objective_function_value)
