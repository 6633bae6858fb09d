"""Parse a spec, inspect the IR, and see what the backend would compute — no torch needed.

Run: python examples/parse_and_inspect.py
"""

from __future__ import annotations

import json

import threatlang
from threatlang.serialize import document

spec = threatlang.load("specs/detection_smoothing.threat")
smooth = next(a for a in spec.actions if isinstance(a, threatlang.ir.Smooth))
print(
    f"{spec.name}: {type(spec.threat).__name__} radius {spec.threat.eps}, sigma {smooth.sigma}, "
    f"{smooth.samples} samples at confidence {smooth.confidence}"
)
print(
    "sortings:",
    [s.value for s in smooth.encoding.sorts],
    "binnings:",
    [b.value for b in smooth.encoding.bins],
)
print(json.dumps(document([spec]))[:200], "...")

try:
    threatlang.parse(
        "spec s {\n  model scene_detector\n  data scenes\n  threat l2_ball { radius -1 }\n}\n",
        file="inline.threat",
    )
except threatlang.SpecError as err:
    for d in err.diagnostics:
        print("error:", d.span, d.message)
