"""The typed schema of an ibp run's summary metrics (declared in the backend's capabilities).

Torch-free. `Summary.metrics` is :func:`as_metrics` of an :class:`IbpSummary`: its fields with
`None` left out, so `IbpSummary(**summary.metrics)` rebuilds it. Fractions are of the test
images scored; seconds are wall-clock seconds of a stage as first measured (a resumed run
reports the seconds its first run recorded, never the time to load a checkpoint).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs


def _doc(text: str, default: Any = None) -> Any:
    return attrs.field(default=default, metadata={"doc": text})


@attrs.frozen
class StrategyMetrics:
    """One row of a side-by-side comparison (a spec with several `train` actions)."""

    clean_accuracy: float = _doc("fraction of test images the model classifies correctly")
    empirical_accuracy: float | None = _doc("fraction correct after the spec's attack")
    certified_accuracy: float | None = _doc("fraction with a certificate")
    train_seconds: float | None = _doc("seconds this strategy trained for")
    soundness_violations: int = _doc("certified images this model's attack broke", 0)


@attrs.frozen
class IbpSummary:
    """Summary metrics of an ibp run. For a comparison, `strategies` holds one
    :class:`StrategyMetrics` per train action and the top-level accuracies are left out."""

    examples: int = _doc("test images scored (per model)", 0)
    clean_accuracy: float | None = _doc("fraction of test images classified correctly")
    empirical_accuracy: float | None = _doc("fraction correct and not broken by the attack")
    certified_accuracy: float | None = _doc("fraction certified against the whole threat")
    soundness_violations: int = _doc(
        "certified images the spec's own attack then broke (0 unless a bound is unsound)", 0
    )
    unsupported: int = _doc("images left unknown because no engine could bound the model", 0)
    train_seconds: float | None = _doc("seconds of training (first run's, after a resume)")
    attack_seconds: float | None = _doc("seconds of the batched attack over the test images")
    certify_seconds: float | None = _doc("seconds certifying the test images")
    shape_transfer: Mapping[str, float] | None = _doc(
        "per patch-shape kind: the worst certified fraction of its shapes (Table 2.4)"
    )
    strategies: Mapping[str, StrategyMetrics] | None = _doc(
        "per train action of a comparison: its row (Tables 2.3 and 2.5)"
    )


def as_metrics(summary: IbpSummary) -> dict[str, Any]:
    """The JSON-ready metrics mapping (fields that are None are left out)."""
    return {k: v for k, v in attrs.asdict(summary).items() if v is not None}


def from_metrics(metrics: Mapping[str, Any]) -> IbpSummary:
    """Rebuild the typed summary from a metrics mapping (raises TypeError on unknown keys)."""
    data = dict(metrics)
    if data.get("strategies") is not None:
        data["strategies"] = {k: StrategyMetrics(**v) for k, v in data["strategies"].items()}
    return IbpSummary(**data)
