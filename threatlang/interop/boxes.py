"""Which threats are boxes: an linf input ball is one box per radius; a patch set is the union,
over shapes and locations, of boxes that free the patch pixels (every channel) to the value
range and pin the rest. Everything else is refused with the reason, never silently boxed."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..ir import LabelUnchanged, LpBall, Norm, PatchSet, Smooth, Spec, Target
from ..ir.properties import OutputsSatisfy
from ..ir.threats import InputBox
from .vnnlib import Box


def refuse_unless_boxes(spec: Spec) -> None:
    """`UsageError` when `spec` cannot be stated as boxes and an output half-space union."""
    threat, what = spec.threat, type(spec.threat).__name__
    if isinstance(threat, LpBall):
        if threat.target is Target.PARAMETERS:
            raise UsageError(
                f"spec '{spec.name}' perturbs the parameters; VNN-LIB constrains inputs only."
            )
        if threat.norm is Norm.L2:
            raise UsageError(
                f"spec '{spec.name}' has an l2 ball, which is not a box; VNN-LIB export "
                "covers linf balls and patch sets (write the exact box with `linf_ball`)."
            )
    elif not isinstance(threat, PatchSet | InputBox):
        raise UsageError(
            f"spec '{spec.name}' has a {what} threat, which is not a box or union of boxes; "
            "VNN-LIB export covers input boxes, linf input balls and patch sets."
        )
    refuse_preprocessing(spec)
    if any(isinstance(a, Smooth) for a in spec.actions):
        raise UsageError(
            f"spec '{spec.name}' is certified by smoothing, a property of the smoothed "
            "classifier, not of the network; VNN-LIB cannot state it."
        )
    if isinstance(threat, InputBox) and not isinstance(spec.require, OutputsSatisfy):
        raise UsageError(
            f"spec '{spec.name}' has an input box, which has no true label; VNN-LIB export "
            "states `require outputs { ... }` for it."
        )
    if not isinstance(spec.require, LabelUnchanged | OutputsSatisfy):
        raise UsageError(
            f"spec '{spec.name}' requires {type(spec.require).__name__}; VNN-LIB export "
            "states label_unchanged and `require outputs { ... }`."
        )


def refuse_preprocessing(spec: Spec) -> None:
    """A `preprocess` defence runs before the network; an exported network would lack it."""
    if spec.preprocess:
        kinds = ", ".join(p.kind.value for p in spec.preprocess)
        raise UsageError(
            f"spec '{spec.name}' puts a {kinds} defence before the network; the exported "
            "network would not include it, so the property would be about another model."
        )


def ball_box(x: np.ndarray, radius: float, low: float, high: float) -> Box:
    """The linf ball of `radius` around `x`, clipped to the valid range [low, high]."""
    x = x.astype(np.float64)
    return Box(np.clip(x - radius, low, high), np.clip(x + radius, low, high))


def patch_boxes(x: np.ndarray, threat: PatchSet) -> tuple[Box, ...]:
    """One box per distinct (shape, location) placement, in shape then location order."""
    x = x.astype(np.float64)
    hw = x.shape[-2:]
    out, seen = [], set()
    for shape in threat.shapes:
        mask = np.array(shape.mask(), dtype=bool)
        for r, c in threat.locations.positions(mask.shape, hw):
            free = np.zeros(hw, dtype=bool)
            h = min(mask.shape[0], hw[0] - r)
            w = min(mask.shape[1], hw[1] - c)
            free[r : r + h, c : c + w] = mask[:h, :w]
            key = free.tobytes()
            if key in seen:
                continue
            seen.add(key)
            lo, hi = x.copy(), x.copy()
            lo[..., free] = threat.values.low
            hi[..., free] = threat.values.high
            out.append(Box(lo, hi))
    return tuple(out)


def example_queries(spec: Spec, x: np.ndarray, low: float, high: float):
    """(suffix, boxes) per property of one example: one per radius, or one union for a patch."""
    threat = spec.threat
    if isinstance(threat, LpBall):
        return [(f"eps{r:g}", (ball_box(x, r, low, high),)) for r in threat.radii]
    return [("patch", patch_boxes(x, threat))]
