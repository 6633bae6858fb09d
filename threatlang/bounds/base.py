"""The per-layer contract of the bound engine: one small class per layer type.

Each op maps an input :class:`Box` to an output box (IBP) and maps a linear lower-bound
coefficient tensor ``A`` on its output back to its input (CROWN back-substitution).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import attrs
from torch import Tensor, nn

from .box import Box

Trace = dict[int, Any]
"""Input box of every op seen in an IBP pass, keyed by ``id(op)`` (needed by CROWN); ops with
several inputs keep the tuple of their input boxes."""


class LowerSlope(enum.Enum):
    """Lower linear relaxation of an unstable ReLU, ``relu(z) >= a * z``.

    ZERO (a = 0) concretises exactly like IBP, so CROWN with it is never looser than IBP;
    ADAPTIVE (a = 1 when u > -l) is CROWN's choice, often tighter, not always. Other
    piecewise-linear ops choose their line through a kink alike (:mod:`.activations`).
    """

    ZERO = "zero"
    ADAPTIVE = "adaptive"


@attrs.frozen
class BackwardOptions:
    """How back-substitution relaxes ReLUs. ``alphas`` (keyed by ``id(op)``) overrides the
    lower slope of the unstable neurons of those ReLUs: any slope in [0, 1] is sound, so an
    optimiser may choose them (alpha-CROWN)."""

    lower_slope: LowerSlope = LowerSlope.ZERO
    alphas: Mapping[int, Tensor] | None = attrs.field(default=None, eq=False)


class Geometry(NamedTuple):
    """Spatial footprint of a local op (for the receptive-field engine)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    pad_value: float


POINTWISE = Geometry((1, 1), (1, 1), (0, 0), 0.0)


class BoundOp(abc.ABC):
    """Bound rules for one layer. ``A`` has shape ``(N, S, *out_shape)``: S specs per row."""

    #: needs bounds on its input to be relaxed (CROWN tightens those first, then relaxes the
    #: op with its own ``backward`` on the tightened box)
    nonlinear: bool = False
    #: output is an affine function of the (single) input: IBP through it is exact per output
    #: neuron when at most one such op on the path ``mixes`` (see ``crown.ibp_exact``)
    affine: bool = False
    #: an output element combines several input elements (Linear, conv, sums); False for
    #: per-element maps and re-indexing (BatchNorm, permute, slice, pad)
    mixes: bool = False
    #: elementwise op whose IBP box is the exact image of its input box, so CROWN through its
    #: relaxation cannot tighten its output once its input box is tight (ReLU, sigmoid, clamp)
    exact_image: bool = False
    #: ``backward`` accepts coefficients shared by every row (leading dim 1 where the box has
    #: N rows) and broadcasts them itself, so a spec that is the same for every row (the
    #: identity rows of an intermediate bound) is never repeated N times through affine ops;
    #: other ops get the rows expanded (see ``BoundGraph.back_substitute``)
    shared_rows: bool = False

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)

    # --- graph interface: ops with several inputs override these three -----------------------
    def forward_all(self, xs: Sequence[Tensor]) -> Tensor:
        return self.forward(xs[0])

    def interval_all(self, boxes: Sequence[Box], trace: Trace | None = None) -> Box:
        if trace is not None:
            trace[id(self)] = boxes[0]
        return self.interval(boxes[0], trace)

    def backward_all(
        self, a: Tensor, trace: Trace, opts: BackwardOptions
    ) -> tuple[list[Tensor | None], Tensor]:
        """Coefficients per input (None: the output does not depend linearly on it), bias."""
        a_in, bias = self.backward(a, trace, opts)
        return [a_in], bias

    @abc.abstractmethod
    def interval(self, box: Box, trace: Trace | None = None) -> Box:
        """Box containing the op's output for every input in ``box``."""

    @abc.abstractmethod
    def backward(self, a: Tensor, trace: Trace, opts: BackwardOptions) -> tuple[Tensor, Tensor]:
        """``(A_in, bias)`` with ``A . out >= A_in . in + bias`` on the traced input box."""

    @property
    def geometry(self) -> Geometry | None:
        """Footprint if the op is spatially local (conv, pool, pointwise), else None."""
        return None

    def interval_valid(self, box: Box) -> Box:
        """IBP on an already padded input (local ops only: those with a `geometry`)."""
        raise TypeError(
            f"{type(self).__name__} is not spatially local; it has no padded-input rule"
        )

    def pre(self, trace: Trace) -> Box:
        return trace[id(self)]

    def unstable(self, pre: Box) -> Tensor | None:
        """Mask (N, *in_shape) of the input neurons whose relaxation depends on their bounds,
        so CROWN tightens only those (a ReLU's neurons that cross 0); None: every neuron (the
        default, and what any op without a piecewise-exact relaxation needs)."""
        return None


def flat_rows(a: Tensor, n_shape: int) -> tuple[Tensor, tuple[int, int]]:
    """Merge the (N, S) leading dims of ``a`` for batched per-sample ops."""
    n, s = a.shape[:2]
    return a.reshape(n * s, *a.shape[2:]), (n, s)


def spec_sum(a: Tensor, v: Tensor) -> Tensor:
    """``sum over feature dims of a * v`` -> shape (N, S); ``v`` broadcasts over the sample
    shape, shared (``*shape``, or ``(1, 1, *shape)``) or per row (``(N, 1, *shape)``).

    A matrix-vector product: reads ``a`` once and never writes the product ``a * v``."""
    n, s = a.shape[:2]
    sample = a.shape[2:]
    flat = a.reshape(n, s, -1)  # also for scalar rows, (N, S, 1)
    if v.dim() <= len(sample):  # the same vector for every row
        return (flat @ v.expand(sample).reshape(-1, 1).to(a.dtype)).squeeze(2)
    if v.dim() == a.dim() and v.shape[1] == 1:  # per row (or shared: leading dim 1)
        rows = v.expand(v.shape[0], 1, *sample).reshape(v.shape[0], -1, 1)
        return (flat @ rows.to(a.dtype)).squeeze(2)
    prod = a * v  # one vector per spec: the plain product
    return prod.reshape(*prod.shape[:2], -1).sum(dim=2)
