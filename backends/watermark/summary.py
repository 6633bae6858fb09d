"""The typed schema of a `watermark` run's summary metrics (`Capabilities.summary`; no torch).

Accuracies are fractions in [0, 1]; radii and distances are l2 norms over the model's
parameters (buffers such as BatchNorm running statistics are held fixed: neither noised nor
counted); times are wall seconds. Per-radius mappings are keyed by the radius as written
(`"0.1"`); a certified value is None where the sample count cannot reach that radius.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen(kw_only=True)
class WatermarkSummary:
    #: plain (black-box) accuracies of the certified watermark's model
    test_accuracy: float
    trigger_accuracy: float
    #: median trigger accuracy under parameter noise σ (the smoothed, white-box watermark)
    smoothed_trigger_accuracy: float
    #: radius -> certified lower bound on the smoothed trigger accuracy (Corollary 5.0.1)
    certified_trigger_accuracy: dict[str, float | None]
    sigma: float
    samples: int
    confidence: float
    #: how noise draws were evaluated ("vmap" or "loop")
    noise_strategy: str
    #: the parameters the ball is over, and the buffer values held fixed (not noised, not
    #: counted in the distance): the certificate covers parameter changes only
    parameters: int
    buffers_held_fixed: int
    certificate_scope: str
    #: radius records certified whose strongest attack inside the radius (parameter PGD, or a
    #: removal attack epoch that moved the parameters less than the radius) pushed the upper
    #: confidence bound of the smoothed trigger accuracy below the certified bound
    soundness_violations: int = 0
    #: the same figures for the baseline watermark of [113] (None without one)
    baseline: dict[str, Any] | None = None
    #: radius -> parameter-space PGD result (None without `attack parameter_pgd`)
    parameter_pgd: dict[str, Any] | None = None
    #: attack label -> model -> the last epoch of that removal attack
    attacks: dict[str, Any] | None = None
    #: seconds to embed each watermark (measured by the run that trained; survive a resume)
    embed_seconds: dict[str, float | None] = attrs.field(factory=dict)
    #: seconds to certify each watermark (all radii)
    certify_seconds: dict[str, float | None] = attrs.field(factory=dict)
