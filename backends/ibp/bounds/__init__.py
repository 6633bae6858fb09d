"""Per-layer interval (IBP) and linear back-substitution (CROWN) bound rules."""

from .base import BackwardOptions, BoundOp, Geometry, LowerSlope, Trace
from .box import Box
from .errors import UnsupportedLayer
from .graph import back_substitute, build_ops, forward, propagate

__all__ = [
    "BackwardOptions",
    "BoundOp",
    "Box",
    "Geometry",
    "LowerSlope",
    "Trace",
    "UnsupportedLayer",
    "back_substitute",
    "build_ops",
    "forward",
    "propagate",
]
