"""Interval and linear bounds contain every sampled pre-activation; linear is no looser."""

import torch

from threatlang.backends.mip.bounds import BoundMethod, layer_bounds, stability_penalty
from threatlang.backends.mip.mechanisms import Mechanism, MechanismConfig


def _activations(layers, x):
    outs, h = [], x
    for w, b in layers:
        z = h @ w.T + b
        outs.append(z)
        h = torch.relu(z)
    return outs


def test_bounds_contain_samples_and_linear_is_tighter() -> None:
    gen = torch.Generator().manual_seed(0)
    mech = Mechanism(MechanismConfig(2, 2, hidden=(32, 32)), generator=gen).double()
    layers = mech.affine_layers()
    lo = torch.rand(3, 4, generator=gen, dtype=torch.float64) * 0.5
    hi = lo + torch.rand(3, 4, generator=gen, dtype=torch.float64) * 0.5
    ib = layer_bounds(layers, lo, hi, BoundMethod.INTERVAL)
    lb = layer_bounds(layers, lo, hi, BoundMethod.LINEAR)
    x = lo.unsqueeze(1) + (hi - lo).unsqueeze(1) * torch.rand(
        3, 500, 4, generator=gen, dtype=torch.float64
    )
    acts = _activations(layers, x)
    for (il, iu), (ll, lu), z in zip(ib, lb, acts, strict=True):
        assert (z >= ll.unsqueeze(1) - 1e-9).all() and (z <= lu.unsqueeze(1) + 1e-9).all()
        assert (ll >= il - 1e-9).all() and (lu <= iu + 1e-9).all()
    # the last layer's linear bounds are strictly tighter somewhere
    assert ((lb[-1][1] - lb[-1][0]) < (ib[-1][1] - ib[-1][0]) - 1e-6).any()


def test_stability_penalty_is_differentiable() -> None:
    mech = Mechanism(MechanismConfig(1, 2, hidden=(8,)), generator=torch.Generator().manual_seed(1))
    lo, hi = torch.zeros(2, 2), torch.ones(2, 2)
    pen = stability_penalty(
        [(lin.weight, lin.bias) for lin in mech.trunk]
        + [(mech.pay_head.weight, mech.pay_head.bias)],
        lo,
        hi,
    )
    pen.backward()
    assert mech.trunk[0].weight.grad is not None and torch.isfinite(pen)
