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
    #: plain (black-box) test accuracy of the certified watermark's model [fraction]
    test_accuracy: float
    #: plain (black-box) trigger-set accuracy of that model [fraction]
    trigger_accuracy: float
    #: median trigger accuracy under parameter noise σ (the smoothed, white-box watermark) [fraction]
    smoothed_trigger_accuracy: float
    #: radius -> certified lower bound on the smoothed trigger accuracy (Corollary 5.0.1) [fraction]
    certified_trigger_accuracy: dict[str, float | None]
    #: standard deviation of the Gaussian parameter noise [parameter units]
    sigma: float
    #: parameter-noise draws behind the certificate [count]
    samples: int
    #: probability that the certified bounds hold over the draws [fraction]
    confidence: float
    #: how noise draws were evaluated ("vmap" or "loop")
    noise_strategy: str
    #: parameter values the noise and the l2 ball range over [count]
    parameters: int
    #: buffer values (BatchNorm running statistics) held fixed: neither noised nor counted in the distance, so the certificate does not cover changing them [count]
    buffers_held_fixed: int
    #: what the certificate covers, in one sentence
    certificate_scope: str
    #: radii with a certified bound whose strongest attack inside the radius (parameter PGD, or
    #: a removal-attack epoch that moved the parameters less than the radius) pushed the upper
    #: confidence bound of the smoothed trigger accuracy below that bound [count]
    soundness_violations: int = 0
    #: the same figures for the baseline watermark of [113] (None without one)
    baseline: dict[str, Any] | None = None
    #: radius -> parameter-space PGD result (None without `attack parameter_pgd`)
    parameter_pgd: dict[str, Any] | None = None
    #: attack label -> model -> the last epoch of that removal attack (None without any)
    attacks: dict[str, Any] | None = None
    #: seconds to embed each watermark (measured by the run that trained; survive a resume) [s]
    embed_seconds: dict[str, float | None] = attrs.field(factory=dict)
    #: seconds to certify each watermark (all radii) [s]
    certify_seconds: dict[str, float | None] = attrs.field(factory=dict)
