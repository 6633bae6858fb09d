"""The threatlang IR: frozen attrs nodes, enums not strings, tuples not lists, spans on every node."""

from .actions import (
    Action,
    Attack,
    AttackLocations,
    AttackMethod,
    BinBy,
    Certify,
    CertifyMethod,
    DetectionEncoding,
    Evaluate,
    EvaluateKind,
    Smooth,
    SmoothKind,
    Solver,
    SortBy,
    Strategy,
    Train,
)
from .options import Option
from .properties import (
    AccuracyAtLeast,
    IoUAtLeast,
    LabelUnchanged,
    OutputBounds,
    Property,
    RegretAtMost,
)
from .refs import DataRef, DataSource, Domain, ModelKind, ModelRef, Preprocess, PreprocessKind
from .shapes import (
    Diamond,
    Line,
    Mask,
    Orientation,
    Parallelogram,
    Rectangle,
    Shape,
    Square,
    mask_size,
    pixel_count,
)
from .span import Span
from .spec import LANGUAGE_VERSION, Spec
from .threats import (
    AllLocations,
    BidSupport,
    Corners,
    Explicit,
    Locations,
    LpBall,
    Norm,
    PatchSet,
    Pyramid,
    Stride,
    Target,
    Threat,
    ValueRange,
)
from .validators import FieldError

__all__ = [name for name in dir() if not name.startswith("_")]
