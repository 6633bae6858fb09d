"""Per-op interval (IBP) and linear back-substitution (CROWN) bound rules over the traced graph."""

from .base import BackwardOptions, BoundOp, Geometry, LowerSlope, Trace
from .box import Box
from .capture import capture
from .dag import BoundGraph, BoundSegment, Node
from .errors import CaptureError, UnsupportedLayer, UnsupportedOp
from .graph import back_substitute, build_ops, forward, propagate

__all__ = [
    "BackwardOptions",
    "BoundGraph",
    "BoundOp",
    "BoundSegment",
    "CaptureError",
    "Box",
    "Geometry",
    "LowerSlope",
    "Node",
    "Trace",
    "UnsupportedLayer",
    "UnsupportedOp",
    "back_substitute",
    "build_ops",
    "capture",
    "forward",
    "propagate",
]
