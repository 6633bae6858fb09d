"""Translation and bound validation: the checks every engine passes before a certificate.

Capture can be wrong in ways no rule table foresees (a tracer that takes one branch, a layer
whose library forward differs from the rule's, an in-place op on an alias). So whatever engine
bounded a model — ours or auto_LiRPA — the computation it bounded is run concretely and
compared with ``model(x)``: on the clean inputs and on points drawn from the threat region.
The model must also be deterministic. Then every lower bound is compared with the margins
observed at those points: a bound above an observed margin is an engine defect, never a
certificate.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from torch import Tensor

from .errors import UnsupportedOp

Forward = Callable[[Tensor], Tensor]

#: relative tolerance between the bounded graph and the model (float32 reassociation)
RTOL = 1e-4


class TranslationMismatch(UnsupportedOp):
    """The bounded computation is not the model's: certify nothing, answer ``unknown``."""

    def __init__(self, why: str) -> None:
        super().__init__("model", "", why)


def _scale(z: Tensor) -> Tensor:
    """Per-row magnitude the tolerances are relative to."""
    return z.detach().abs().flatten(1).amax(1).clamp(min=1.0)


def _row_error(a: Tensor, b: Tensor) -> Tensor:
    return (a.double() - b.double()).abs().flatten(1).amax(1)


def check_deterministic(model: Forward, x: Tensor, first: Tensor | None = None) -> Tensor:
    """``model(x)``, after checking that a second call returns the same values (``first``: the
    result of an earlier call, when the caller has one)."""
    with torch.no_grad():
        z1 = model(x) if first is None else first
        z2 = model(x)
    if not isinstance(z1, Tensor):
        raise TranslationMismatch(
            f"the model returns {type(z1).__name__}, not one tensor of scores"
        )
    bad = _row_error(z1, z2) > RTOL * _scale(z1)
    if bool(bad.any()):
        diff = float(_row_error(z1, z2).max())
        raise TranslationMismatch(
            f"the model is not deterministic (two calls on the same input differ by {diff:.3g}; "
            "is dropout or another random op active in eval mode?)"
        )
    return z1


def check_translation(model: Forward, bounded: Forward, points: Tensor, what: str) -> Tensor:
    """``model(points)`` after checking the bounded computation agrees with it there.

    ``points``: (P, N, *shape), P points per row; ``what`` names them for the reason."""
    p, n = points.shape[:2]
    flat = points.reshape(p * n, *points.shape[2:])
    with torch.no_grad():
        z = model(flat)
        g = bounded(flat)
    if g.shape != z.shape:
        raise TranslationMismatch(
            f"the bounded graph's output {tuple(g.shape)} differs in shape from the model's "
            f"{tuple(z.shape)}"
        )
    err = _row_error(g, z)
    bad = err > RTOL * _scale(z)
    if bool(bad.any()):
        k = int(bad.nonzero()[0, 0])
        raise TranslationMismatch(
            f"the bounded graph differs from the model at {what} (point {k // n} of row {k % n}: "
            f"by {float(err[k]):.3g}), so what would be certified is not what the model "
            "computes"
        )
    return z.reshape(p, n, *z.shape[1:])


def observed_margins(logits: Tensor, y: Tensor) -> Tensor:
    """Worst observed runner-up margin per row: ``min over points, j != y of z_y - z_j``
    (``logits``: (P, N, K))."""
    zy = logits.gather(2, y[None, :, None].expand(logits.shape[0], -1, 1))
    m = (zy - logits).scatter(2, y[None, :, None].expand(logits.shape[0], -1, 1), float("inf"))
    return m.amin(2).amin(0)


@attrs.frozen
class BoundCheck:
    """Rows whose certified lower bound exceeds a margin observed in the threat region."""

    violated: Tensor  # (N,) bool
    observed: Tensor  # (N,) worst observed margin

    def reason(self, i: int, bound: float) -> str:
        return (
            f"engine defect: the certified margin lower bound {bound:.4g} is above the margin "
            f"{float(self.observed[i]):.4g} observed at a point of the threat region; the item "
            "is not certified"
        )


def check_bounds(lower: Tensor, logits: Tensor, y: Tensor, rtol: float = 1e-5) -> BoundCheck:
    """Compare worst-margin lower bounds (N,) with the margins at the sampled points."""
    observed = observed_margins(logits.double(), y)
    slack = rtol * _scale(logits.reshape(-1, logits.shape[-1])).amax().double()
    violated = torch.isfinite(lower) & (lower.double() > observed + slack)
    return BoundCheck(violated.cpu(), observed.cpu())
