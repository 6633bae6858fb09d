"""Bounds on every pre-activation of a ReLU MLP over an input box (the big-M constants).

Computed by the shared bound engine (``threatlang.bounds.crown``) on the MLP as a bound
graph: interval arithmetic (IBP; differentiable, used by the stability regulariser at train
time) and backward linear bounds (CROWN with adaptive lower slopes, intersected with IBP;
tighter, used at certification time). Tighter bounds mean fewer unstable ReLUs, fewer
binaries and smaller big-M constants.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import torch
from torch import nn

from threatlang.bounds import BackwardOptions, BoundGraph, Box, LowerSlope, Node
from threatlang.bounds.affine import BoundLinear, LinearParams
from threatlang.bounds.crown import forward_pass
from threatlang.bounds.inputs import BoxInput
from threatlang.bounds.nonlinear import BoundReLU

Layers = Sequence[tuple[torch.Tensor, torch.Tensor]]
Bounds = list[tuple[torch.Tensor, torch.Tensor]]


class BoundMethod(enum.Enum):
    INTERVAL = "interval"
    LINEAR = "linear"


def mlp_graph(layers: Layers) -> tuple[BoundGraph, list[int]]:
    """The MLP ``affine (ReLU affine)*`` as a bound graph, and the node of each affine layer."""
    nodes = [Node(None, (), "input")]
    affine = []
    for k, (w, b) in enumerate(layers):
        if k > 0:
            nodes.append(Node(BoundReLU(nn.ReLU()), (len(nodes) - 1,), f"relu{k}"))
        nodes.append(Node(BoundLinear(LinearParams(w, b)), (len(nodes) - 1,), f"affine{k}"))
        affine.append(len(nodes) - 1)
    return BoundGraph(nodes), affine


def _bounds(layers: Layers, lo: torch.Tensor, hi: torch.Tensor, crown: bool) -> Bounds:
    graph, affine = mlp_graph(layers)
    opts = BackwardOptions(LowerSlope.ADAPTIVE)
    inputs = BoxInput(Box.from_bounds(lo, hi))
    fp = forward_pass(graph, inputs, opts, crown=crown, full=True, keep=set(affine), intersect=True)
    return [(fp.boxes[i].lo, fp.boxes[i].hi) for i in affine]


def interval_bounds(layers: Layers, lo: torch.Tensor, hi: torch.Tensor) -> Bounds:
    """Pre-activation ``(l, u)`` of every affine layer (ReLU between layers), batched ``(B, n)``."""
    return _bounds(layers, lo, hi, crown=False)


def linear_bounds(layers: Layers, lo: torch.Tensor, hi: torch.Tensor) -> Bounds:
    """Backward linear (CROWN) bounds of every neuron, intersected with interval bounds."""
    return _bounds(layers, lo, hi, crown=True)


def layer_bounds(layers: Layers, lo: torch.Tensor, hi: torch.Tensor, method: BoundMethod) -> Bounds:
    with torch.no_grad():
        if method is BoundMethod.INTERVAL:
            return interval_bounds(layers, lo, hi)
        return linear_bounds(layers, lo, hi)


def interval_bounds_direct(layers: Layers, lo: torch.Tensor, hi: torch.Tensor) -> Bounds:
    """``interval_bounds`` in closed form (centre ``W c + b``, radius ``|W| r``): the same boxes
    with two matrix products per layer and no bound graph, for the training step's regulariser,
    which runs every batch (the tests hold it to the engine's boxes)."""
    out: Bounds = []
    for k, (w, b) in enumerate(layers):
        if k > 0:
            lo, hi = torch.relu(lo), torch.relu(hi)
        centre = torch.addmm(b, (hi + lo) / 2, w.T)
        radius = ((hi - lo) / 2) @ w.abs().T
        lo, hi = centre - radius, centre + radius
        out.append((lo, hi))
    return out


def stability_penalty(layers: Layers, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """ReLU-stability regulariser ``-tanh(1 + u*l)`` summed over hidden units (Xiao et al. 2019).

    Differentiable; interval bounds over the box. Mean over the batch.
    """
    bounds = interval_bounds_direct(layers[:-1], lo, hi)
    total = sum(-torch.tanh(1 + u * lo_).sum(dim=-1) for lo_, u in bounds)
    return total.mean()
