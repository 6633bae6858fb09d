"""The engine bounds what ``forward`` computes: its graph runs like the model, and every bound
holds for sampled and vertex inputs of the box (and equals or stays below the exact optimum,
found by a MIP, on a tiny network with a skip connection written in forward)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from threatlang.bounds import Box, LowerSlope, capture
from threatlang.bounds.crown import Method, bound_graph
from threatlang.bounds.engine import margin_matrix

from .zoo import SHAPE, ZOO, build, inputs


def _samples(lo: Tensor, hi: Tensor, n: int, seed: int = 0) -> Tensor:
    """(n, N, *shape): uniform points and random vertices of each row's box."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand((n, *lo.shape), generator=gen)
    vertex = torch.randint(0, 2, (n, *lo.shape), generator=gen).float()
    u = torch.where(torch.rand((n, *lo.shape), generator=gen) < 0.5, u, vertex)
    return lo + u * (hi - lo)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_graph_runs_like_the_model(name: str) -> None:
    model = build(name)
    x = inputs(5)
    with torch.no_grad():
        assert torch.allclose(capture(model, x).forward(x), model(x), atol=1e-5)


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("name", sorted(ZOO))
def test_bounds_contain_sampled_outputs(name: str, method: Method) -> None:
    model = build(name)
    x = inputs(2)
    eps = 0.1
    lo, hi = (x - eps).clamp(0, 1), (x + eps).clamp(0, 1)
    y = model(x).argmax(1)
    c = margin_matrix(y, 4)
    with torch.no_grad():
        res = bound_graph(capture(model, x), lo, hi, method, c, slope=LowerSlope.ADAPTIVE)
        xs = _samples(lo, hi, 400)
        z = model(xs.reshape(-1, *SHAPE)).reshape(400, 2, 4)
    spec = torch.einsum("nsk,mnk->mns", c, z)  # (samples, N, S)
    assert bool((res.lb <= spec.amin(0) + 1e-5).all())
    assert bool((res.ub >= spec.amax(0) - 1e-5).all())
    for r, box in res.pre.items():  # pre-activation boxes are sound too
        assert box.centre.shape[0] == 2, r


class ResMLP(nn.Module):
    """2 -> 6 -> 6 (+ skip) -> 3, the skip written in forward."""

    def __init__(self) -> None:
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(2, 6), nn.Linear(6, 6), nn.Linear(6, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.l1(x))
        h = torch.relu(self.l2(h)) + h
        return self.l3(h)


def _exact_min(model: ResMLP, lo: np.ndarray, hi: np.ndarray, c: np.ndarray) -> float:
    """min over the box of c . model(x), by a big-M MIP (HiGHS); big-M from interval
    arithmetic written here, independent of the engine."""
    highspy = pytest.importorskip("highspy")
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)

    def var(lb: float, ub: float, integer: bool = False) -> int:
        h.addVar(lb, ub)
        col = h.getNumCol() - 1
        if integer:
            h.changeColIntegrality(col, highspy.HighsVarType.kInteger)
        return col

    def row(lower: float, upper: float, coefs: dict[int, float]) -> None:
        idx = np.array(list(coefs), dtype=np.int32)
        h.addRow(lower, upper, len(idx), idx, np.array(list(coefs.values()), dtype=np.float64))

    def affine(lin, cols, box_lo, box_hi):
        w, b = lin.weight.detach().double().numpy(), lin.bias.detach().double().numpy()
        mid, rad = (box_hi + box_lo) / 2, (box_hi - box_lo) / 2
        z_lo, z_hi = w @ mid - np.abs(w) @ rad + b, w @ mid + np.abs(w) @ rad + b
        out = []
        for i in range(w.shape[0]):
            z = var(z_lo[i] - 1, z_hi[i] + 1)
            row(b[i], b[i], {z: 1.0, **{col: -w[i, n] for n, col in enumerate(cols)}})
            out.append(z)
        return out, z_lo - 1, z_hi + 1

    def relu(zs, z_lo, z_hi):
        out = []
        for z, lz, uz in zip(zs, z_lo, z_hi, strict=True):
            a = var(0.0, max(0.0, uz))
            d = var(0.0, 1.0, integer=True)
            row(0.0, highspy.kHighsInf, {a: 1.0, z: -1.0})
            row(-highspy.kHighsInf, -lz, {a: 1.0, z: -1.0, d: -lz})
            row(-highspy.kHighsInf, 0.0, {a: 1.0, d: -uz})
            out.append(a)
        return out, np.maximum(z_lo, 0), np.maximum(z_hi, 0)

    cols = [var(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]
    h1, l1, u1 = relu(*affine(model.l1, cols, lo, hi))
    r2, l2, u2 = relu(*affine(model.l2, h1, l1, u1))
    s = []
    for a, b in zip(r2, h1, strict=True):
        v = var(-1e6, 1e6)
        row(0.0, 0.0, {v: 1.0, a: -1.0, b: -1.0})
        s.append(v)
    out, _, _ = affine(model.l3, s, l2 + l1, u2 + u1)
    h.changeColsCost(len(out), np.array(out, dtype=np.int32), c.astype(np.float64))
    h.run()
    return h.getInfo().objective_function_value


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounds_below_the_exact_optimum(seed: int) -> None:
    torch.manual_seed(seed)
    model = ResMLP().double().eval()
    x = torch.rand(1, 2, dtype=torch.float64)
    lo, hi = x - 0.3, x + 0.3
    graph = capture(model, x)
    for k, j in itertools.permutations(range(3), 2):
        c = torch.zeros(1, 1, 3, dtype=torch.float64)
        c[0, 0, k], c[0, 0, j] = 1.0, -1.0
        exact = _exact_min(model, lo[0].numpy(), hi[0].numpy(), c[0, 0].numpy())
        with torch.no_grad():
            for method in Method:
                lb = bound_graph(graph, lo, hi, method, c, need_upper=False).lb
                assert float(lb) <= exact + 1e-6, (method, k, j)


def test_relu_split_bounds_hold_on_the_split_region() -> None:
    """``known`` restricts a ReLU's pre-activation (as a branch-and-bound split does); the
    bounds then hold for every input of the box in that region."""
    torch.manual_seed(3)
    model = ResMLP().eval()
    x = torch.rand(1, 2)
    graph = capture(model, x)
    lo, hi = x - 0.4, x + 0.4
    with torch.no_grad():
        base = bound_graph(graph, lo, hi, Method.CROWN)
        r = graph.relus[0]
        pre = base.pre[r]
        unstable = ((pre.lo < 0) & (pre.hi > 0)).flatten().nonzero().flatten()
        assert unstable.numel() > 0, "the case should have an unstable neuron to split"
        i = int(unstable[0])
        new_lo = pre.lo.clone()
        new_lo[0, i] = 0.0  # the "active" branch: pre-activation i >= 0
        split = bound_graph(graph, lo, hi, Method.CROWN, known={r: Box.from_bounds(new_lo, pre.hi)})
        xs = _samples(lo, hi, 4000, seed=1).reshape(-1, 2)
        z_pre = model.l1(xs)[:, i]
        out = model(xs[z_pre >= 0])
    assert out.shape[0] > 0
    assert bool((split.lb[0] <= out.amin(0) + 1e-5).all())
    assert bool((split.ub[0] >= out.amax(0) - 1e-5).all())
