"""A traced network as a DAG of bound ops, and the two walks over it (IBP forward, linear
back-substitution backward). Residual sums, concatenations and reused tensors are edges, so
every op, wherever the user's ``forward`` put it, is bounded by the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from torch import Tensor

from .base import BackwardOptions, BoundOp, Trace
from .box import Box
from .nonlinear import BoundReLU


@attrs.frozen
class Node:
    """One op of the graph: ``op`` applied to the outputs of ``inputs`` (node indices).

    ``name`` is the traced node's name, ``where`` the module path / source line it came from."""

    op: BoundOp | None  # None for the input (node 0)
    inputs: tuple[int, ...]
    name: str
    where: str = ""


class BoundGraph:
    """Bound ops in topological order; node 0 is the network input, the last node its output.

    Public surface for other verifiers: :attr:`nodes`, :attr:`relus` (indices of ReLU nodes;
    their pre-activation is node ``nodes[i].inputs[0]``), :meth:`forward`, :meth:`interval`
    and :meth:`back_substitute`; :func:`threatlang.bounds.crown.bound_graph` bounds
    linear functions of the output.
    """

    def __init__(self, nodes: Sequence[Node]) -> None:
        if not nodes or nodes[0].op is not None:
            raise ValueError("node 0 must be the input")
        self.nodes: tuple[Node, ...] = tuple(nodes)
        n = len(self.nodes)
        self.consumers: list[list[int]] = [[] for _ in range(n)]
        for i, node in enumerate(self.nodes):
            for j in node.inputs:
                if j >= i:
                    raise ValueError("nodes must be in topological order")
                if i not in self.consumers[j]:
                    self.consumers[j].append(i)
        self.last_use = [max(c, default=n) for c in self.consumers]
        crossed = [False] * n  # crossed[i]: some edge u -> v has u < i < v
        for v, node in enumerate(self.nodes):
            for u in node.inputs:
                for i in range(u + 1, v):
                    crossed[i] = True
        self._crossed = crossed

    @property
    def output(self) -> int:
        return len(self.nodes) - 1

    @property
    def relus(self) -> tuple[int, ...]:
        return tuple(i for i, nd in enumerate(self.nodes) if isinstance(nd.op, BoundReLU))

    def is_cut(self, i: int) -> bool:
        """Everything after node ``i`` depends on earlier nodes only through node ``i``."""
        return not self._crossed[i]

    # --- forward walks ---------------------------------------------------------------------
    def forward(self, x: Tensor, start: int = 0, stop: int | None = None) -> Tensor:
        """The value of node ``stop - 1`` (default: the output) given node ``start``'s value."""
        stop = len(self.nodes) if stop is None else stop
        vals = {start: x}
        for i in range(start + 1, stop):
            node = self.nodes[i]
            vals[i] = node.op.forward_all([vals[j] for j in node.inputs])
            self._free(vals, node, i)
        return vals[stop - 1]

    def interval(
        self, box: Box, trace: Trace | None = None, start: int = 0, stop: int | None = None
    ) -> Box:
        """IBP box of node ``stop - 1`` given the box of node ``start``."""
        stop = len(self.nodes) if stop is None else stop
        boxes = {start: box}
        self.propagate(boxes, start + 1, stop, trace)
        return boxes[stop - 1]

    def propagate(
        self, boxes: dict[int, Box], start: int, stop: int, trace: Trace | None = None
    ) -> None:
        """IBP for nodes ``start..stop-1`` into ``boxes`` (boxes no later node reads are
        dropped; ``stop - 1`` is kept)."""
        for i in range(start, stop):
            node = self.nodes[i]
            boxes[i] = node.op.interval_all([boxes[j] for j in node.inputs], trace)
            self._free(boxes, node, i)

    def _free(self, store: dict, node: Node, i: int) -> None:
        for j in node.inputs:
            if self.last_use[j] == i and j in store:
                del store[j]

    # --- backward walk ---------------------------------------------------------------------
    def back_substitute(
        self, target: int, a: Tensor, trace: Trace, opts: BackwardOptions, stop: int = 0
    ) -> tuple[Tensor | None, Tensor]:
        """Carry ``A`` (N, S, *shape of node ``target``) back to node ``stop``: returns the
        coefficients on node ``stop`` (None when ``target`` does not depend on it) and the
        summed bias, with ``A . target >= A_stop . node_stop + bias`` on the traced boxes.

        ``A`` expanded along the batch (stride 0: one spec for every row) is carried as one
        row through the ops that keep it shared (``shared_rows``: affine maps), so e.g. the
        identity rows of an intermediate bound cost one product, not N; the coefficients
        returned may then be such an expanded view."""
        n = a.shape[0]
        if n > 1 and a.stride(0) == 0:
            a = a[:1]
        acc: dict[int, Tensor] = {target: a}
        bias = a.new_zeros(a.shape[:2])
        for i in range(target, stop, -1):
            a_i = acc.pop(i, None)
            if a_i is None:
                continue
            node = self.nodes[i]
            op = node.op
            if a_i.shape[0] != n and not op.shared_rows:
                a_i = a_i.expand(n, *a_i.shape[1:])
            a_ins, b = op.backward_all(a_i, trace, opts)
            bias = bias + b
            for j, a_j in zip(node.inputs, a_ins, strict=True):
                if a_j is None:
                    continue
                if j < stop:
                    raise ValueError(f"node {i} reads node {j} from before node {stop}")
                acc[j] = _accumulate(acc[j], a_j) if j in acc else a_j
        out = acc.get(stop)
        if out is not None and out.shape[0] != n:
            out = out.expand(n, *out.shape[1:])
        if bias.shape[0] != n:
            bias = bias.expand(n, bias.shape[1]).contiguous()
        return out, bias

    # --- chain view (receptive-field and pooling engines walk a list of ops) ---------------
    def chain(self, stop: int | None = None) -> list[BoundOp]:
        """Nodes ``1..stop-1`` as a list of single-input ops: runs between cut nodes that are
        not a single op (a residual block, a concatenation) become one :class:`BoundSegment`."""
        stop = len(self.nodes) if stop is None else stop
        ops: list[BoundOp] = []
        entry = 0
        for i in range(1, stop):
            if not (self.is_cut(i) or i == stop - 1):
                continue
            node = self.nodes[i]
            if i == entry + 1 and node.inputs == (entry,):
                ops.append(node.op)
            else:
                ops.append(BoundSegment(self, entry, i + 1))
            entry = i
        return ops


def _accumulate(acc: Tensor, a: Tensor) -> Tensor:
    """``acc + a`` for the coefficients of a node read by several later nodes."""
    return acc + a


class BoundSegment(BoundOp):
    """Nodes ``entry+1 .. stop-1`` of a graph with one input (node ``entry``) and one output
    (node ``stop-1``), bounded as a single op."""

    def __init__(self, graph: BoundGraph, entry: int, stop: int) -> None:
        super().__init__(None)  # type: ignore[arg-type]
        self.graph, self.entry, self.stop = graph, entry, stop

    @property
    def nodes(self) -> tuple[Node, ...]:
        return self.graph.nodes[self.entry + 1 : self.stop]

    def forward(self, x: Tensor) -> Tensor:
        return self.graph.forward(x, self.entry, self.stop)

    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        return self.graph.interval(box, trace, self.entry, self.stop)

    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        a_in, bias = self.graph.back_substitute(self.stop - 1, a, trace, opts, self.entry)
        if a_in is None:
            pre = self.pre(trace).centre
            a_in = pre.new_zeros(pre.shape[0], a.shape[1], *pre.shape[1:])
        return a_in, bias
