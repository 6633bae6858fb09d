"""IBP <= CROWN <= the exact optimum, found by a mixed-integer program (big-M ReLUs, HiGHS)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from threatlang.bounds import Box, LowerSlope
from threatlang.bounds.engine import BoundConfig, BoundedNetwork, Method
from threatlang.bounds.inputs import BoxInput

highspy = pytest.importorskip("highspy")


def exact_min_margin(model: nn.Sequential, lo: np.ndarray, hi: np.ndarray, y: int, j: int) -> float:
    """min over the box of z_y - z_j for a Linear/ReLU chain, exactly."""
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

    cols = [var(float(a), float(b)) for a, b in zip(lo, hi, strict=True)]
    box_lo, box_hi = torch.tensor(lo), torch.tensor(hi)
    linears = [m for m in model if isinstance(m, nn.Linear)]
    for k, lin in enumerate(linears):
        w, b = lin.weight.double().detach().numpy(), lin.bias.double().detach().numpy()
        centre, radius = (box_hi + box_lo) / 2, (box_hi - box_lo) / 2
        z_lo = w @ centre.numpy() - np.abs(w) @ radius.numpy() + b
        z_hi = w @ centre.numpy() + np.abs(w) @ radius.numpy() + b
        if k == len(linears) - 1:
            h.changeColsCost(len(cols), np.array(cols, dtype=np.int32), w[y] - w[j])
            h.run()
            return h.getInfo().objective_function_value + b[y] - b[j]
        new = []
        for i in range(w.shape[0]):
            z = var(z_lo[i], z_hi[i])
            row(b[i], b[i], {z: 1.0, **{c: -w[i, n] for n, c in enumerate(cols)}})
            a = var(0.0, max(0.0, z_hi[i]))
            if z_lo[i] >= 0:
                row(0.0, 0.0, {a: 1.0, z: -1.0})
            elif z_hi[i] > 0:
                d = var(0.0, 1.0, integer=True)
                row(0.0, highspy.kHighsInf, {a: 1.0, z: -1.0})  # a >= z
                row(-highspy.kHighsInf, -z_lo[i], {a: 1.0, z: -1.0, d: -z_lo[i]})  # a <= z - l(1-d)
                row(-highspy.kHighsInf, 0.0, {a: 1.0, d: -z_hi[i]})  # a <= u d
            new.append(a)
        cols = new
        box_lo = torch.tensor(np.maximum(z_lo, 0))
        box_hi = torch.tensor(np.maximum(z_hi, 0))
    raise AssertionError("the network must end in a Linear layer")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bounds_contain_mip_optimum(seed: int) -> None:
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, 3)
    ).double()
    x = torch.rand(1, 6, dtype=torch.float64)
    y = model(x).argmax(1)
    eps = 0.15
    inputs = BoxInput(Box(x, torch.full_like(x, eps)))
    net = BoundedNetwork(model, x)
    torch.set_grad_enabled(False)
    samples = (
        x
        + (
            torch.rand(4000, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
            * 2
            - 1
        )
        * eps
    )
    z = model(samples)
    torch.set_grad_enabled(True)
    with torch.no_grad():
        ibp = net.margins(inputs, y, BoundConfig(Method.IBP))[0]
        crown = net.margins(inputs, y, BoundConfig(Method.CROWN, LowerSlope.ZERO))[0]
        adaptive = net.margins(inputs, y, BoundConfig(Method.CROWN, LowerSlope.ADAPTIVE))[0]
    lo, hi = (x - eps)[0].numpy(), (x + eps)[0].numpy()
    for j in range(3):
        if j == int(y):
            continue
        exact = exact_min_margin(model, lo, hi, int(y), j)
        assert float(ibp[j]) <= float(crown[j]) + 1e-9 <= exact + 1e-6
        assert float(adaptive[j]) <= exact + 1e-6
        sampled = float((z[:, int(y)] - z[:, j]).min())
        assert exact <= sampled + 1e-6  # the MIP optimum is a true minimum over the box
