"""Bound engine over a whole network: IBP, CROWN and alpha-CROWN lower bounds on
classification margins, over the network's traced graph (:mod:`.bounds.capture`).

Margins ``m_j = z_true - z_j`` (2.3) are bounded with the margin matrix merged into the last
Linear layer (elision, §2.4.1): that layer is never bounded on its own, which is tighter.
CROWN reaches every ReLU and max-pool, residual bodies included (:mod:`.crown`).
"""

from __future__ import annotations

import attrs
import torch
from torch import Tensor, nn

from . import (
    BackwardOptions,
    BoundGraph,
    BoundOp,
    Box,
    LowerSlope,
    Trace,
    UnsupportedOp,
    capture,
)
from .affine import BoundLinear
from .crown import (
    GraphBounds,
    Method,
    bound_graph,
    bound_inputs,
    forward_pass,
    optimize_alphas,
    spec_bounds,
)
from .inputs import InputSet

__all__ = [
    "BoundConfig",
    "BoundGraph",
    "BoundedNetwork",
    "GraphBounds",
    "Method",
    "bound_graph",
    "bound_inputs",
    "capture",
    "margin_matrix",
]


@attrs.frozen
class BoundConfig:
    method: Method = Method.IBP
    lower_slope: LowerSlope = LowerSlope.ZERO
    alpha_steps: int = 20  # Adam steps of alpha-CROWN
    # CROWN's intermediate boxes: intersected with IBP (True), replaced (False, auto_LiRPA's
    # choice), or both and the better margin per entry (None; see crown.bound_inputs)
    intersect: bool | None = None


def margin_matrix(y: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``C[n, j] = e_{y_n} - e_j`` of shape (N, K, K); row ``y_n`` is zero."""
    eye = torch.eye(num_classes, device=y.device, dtype=dtype)
    return eye[y].unsqueeze(1) - eye.unsqueeze(0)


class BoundedNetwork:
    """A torch module's traced computation as a bound graph. Raises UnsupportedOp (an
    UnsupportedLayer) at construction when an op has no sound rule.

    ``graph`` is the whole DAG; ``body`` is it as a chain of single-input ops (branching runs
    become segments) up to ``last``, the final Linear when there is one (merged into the margin
    matrix), for the receptive-field and pooling engines."""

    def __init__(self, model: nn.Module, example: Tensor) -> None:
        self.model = model
        self.graph: BoundGraph = capture(model, example)
        g = self.graph
        if len(g.nodes) < 2:
            raise UnsupportedOp(type(model).__name__, "<model>", "the output is the input")
        out = g.nodes[-1]
        elide = isinstance(out.op, BoundLinear) and out.inputs == (g.output - 1,)
        self.last: BoundLinear | None = out.op if elide else None
        self.body_stop = g.output if elide else len(g.nodes)
        self.body: list[BoundOp] = g.chain(self.body_stop)
        self.ops: list[BoundOp] = self.body + ([self.last] if self.last is not None else [])

    def logits(self, x: Tensor) -> Tensor:
        return self.graph.forward(x)

    def bounded_forward(self, x: Tensor) -> Tensor:
        """The computation the bounds are about, run concretely (for translation validation)."""
        return self.graph.forward(x)

    def ibp_sound_for(self, inputs: InputSet) -> bool:
        return True

    def interval(self, inputs: InputSet) -> Box:
        """IBP box of the logits (no elision)."""
        return forward_pass(self.graph, inputs, BackwardOptions(), crown=False).boxes[
            self.graph.output
        ]

    def body_box(self, inputs: InputSet, trace: Trace | None) -> Box:
        if self.body_stop <= 1:
            return inputs.box()
        fp = forward_pass(self.graph, inputs, BackwardOptions(), stop=self.body_stop, crown=False)
        if trace is not None:
            trace.update(fp.trace)
        return fp.boxes[self.body_stop - 1]

    def _merged_last(self, y: Tensor, k: int) -> tuple[Tensor, Tensor]:
        w, b = self.last.module.weight, self.last.module.bias
        c = margin_matrix(y, k, w.dtype)
        bias = c @ b if b is not None else c.new_zeros(c.shape[:2])
        return c @ w, bias

    def margins(self, inputs: InputSet, y: Tensor, cfg: BoundConfig = BoundConfig()) -> Tensor:
        """Lower bounds (N, K) on ``z_y - z_j`` over the input set; column ``y`` is 0."""
        if cfg.method is Method.IBP:
            return self._ibp_margins(inputs, y)
        return self._crown_margins(inputs, y, cfg)

    def _ibp_margins(self, inputs: InputSet, y: Tensor) -> Tensor:
        if self.last is None:
            box = self.interval(inputs)
            m = box.lo.gather(1, y[:, None]) - box.hi
            return m.scatter(1, y[:, None], 0.0)
        box = self.body_box(inputs, None)
        if box.centre.dim() != 2:
            raise UnsupportedOp("linear", self.graph.nodes[-1].where, "logits of shape (N, K)")
        w, bias = self._merged_last(y, self.last.module.out_features)
        c, r = box.centre.unsqueeze(2), box.radius.unsqueeze(2)
        return (w @ c).squeeze(2) - (w.abs() @ r).squeeze(2) + bias

    def _crown_margins(self, inputs: InputSet, y: Tensor, cfg: BoundConfig) -> Tensor:
        opts = BackwardOptions(cfg.lower_slope)
        crown = cfg.method is not Method.CROWN_IBP
        modes = [True, False] if crown and cfg.intersect is None else [bool(cfg.intersect)]
        best = None
        for mode in modes:
            fp = forward_pass(self.graph, inputs, opts, crown=crown, intersect=mode)
            out = fp.boxes[self.graph.output]
            if out.centre.dim() != 2:
                raise UnsupportedOp("output", "<model>", "margins need logits of shape (N, K)")
            c = margin_matrix(y, out.centre.shape[1], out.centre.dtype)
            if cfg.method is Method.ALPHA_CROWN:
                m, _ = optimize_alphas(
                    self.graph, inputs, c, fp.trace, steps=cfg.alpha_steps, init=cfg.lower_slope
                )
            else:
                m = spec_bounds(self.graph, inputs, c, fp.trace, opts)
            best = m if best is None else torch.maximum(best, m)
        return best
