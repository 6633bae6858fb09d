"""threatlang: declarative threat specifications for neural networks.

Importing this package loads only the language (grammar, IR, checks); backends and torch are
imported when a spec is run.
"""

from __future__ import annotations

from . import ir
from .api import RunResult, plan, run, validate
from .errors import CapabilityError, SpecError, UsageError
from .parse import load, load_all, parse, parse_all

__version__ = "0.1.0"
__all__ = [
    "CapabilityError",
    "RunResult",
    "SpecError",
    "UsageError",
    "__version__",
    "ir",
    "load",
    "load_all",
    "parse",
    "parse_all",
    "plan",
    "run",
    "validate",
]
