"""The typed schema of a smoothing run's summary metrics (declared in the backend's capabilities).

Torch-free. `Summary.metrics` is :func:`as_metrics` of a :class:`SmoothingSummary`: the fields
that apply to the run's mode (detection, classification or regression), `None` left out.
Fractions are of the test items scored; seconds are a stage's wall-clock seconds as first
measured (a resumed run reports its first run's training seconds, never a checkpoint load).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["SmoothingSummary", "as_metrics"]


def _doc(text: str, default: Any = None) -> Any:
    return attrs.field(default=default, metadata={"doc": text})


@attrs.frozen
class SmoothingSummary:
    """Summary metrics of a smoothing run; `mode` says which of the groups below apply."""

    mode: str = _doc("detection, classify or regression", "regression")
    soundness_violations: int = _doc(
        "certified items the run's own check then falsified: detection, objects certified on an "
        "image that the DAG attack on the smoothed detector made it miss; regression, examples "
        "whose smoothed prediction lies outside their own certified interval; classify runs no "
        "attack (0)",
        0,
    )
    # -- every mode
    sigma: float | None = _doc("standard deviation of the Gaussian noise")
    eps: float | None = _doc("the l2 radius certified")
    samples: int | None = _doc("Monte Carlo samples per item")
    confidence: float | None = _doc("confidence of each bound (per side, §3.5)")
    reason: str | None = _doc("why nothing was certified, when nothing was")
    min_samples: int | None = _doc("the smallest sample count that could certify, when too few")
    train_seconds: float | None = _doc("seconds training the builtin model (first run's)")
    certify_seconds: float | None = _doc("seconds smoothing and certifying the items")
    # -- detection (§3.3-3.6)
    status: str | None = _doc("unknown when too few samples left every image uncertified")
    images: int | None = _doc("test images scored")
    ap50: float | None = _doc("AP at the IoU threshold of the base detector")
    base_step_ap50: float | None = _doc("the base detector's AP on the objectness-threshold grid")
    smoothed_ap50: float | None = _doc("AP of the smoothed detector (headline combination)")
    certified_ap50: float | None = _doc("certified AP (headline combination, Table 3.1)")
    confidence_per_bound: float | None = _doc("per-bound confidence after any union bound")
    simultaneous: bool | None = _doc("one confidence over every bound of an image")
    iou_tau: float | None = _doc("IoU a detection must keep to count as correct")
    headline: str | None = _doc("binning/sorting combination of the headline metrics")
    thresholds: list[float] | None = _doc("objectness thresholds, high to low")
    k_lower: int | None = _doc("rank (1-based) of the lower order statistic")
    k_upper: int | None = _doc("rank (1-based) of the upper order statistic")
    combinations: Mapping[str, Mapping[str, Any]] | None = _doc(
        "per binning/sorting: smoothed and certified AP, precision and recall per threshold"
    )
    attack_images: int | None = _doc("images attacked with DAG on the smoothed detector")
    attack_recall: float | None = _doc("recall of the smoothed detector on the attacked images")
    attack_clean_recall: float | None = _doc("its recall on the same images unattacked")
    attack_certified_recall: float | None = _doc("certified recall of the same images")
    attack_skipped: str | None = _doc("why the attack did not run")
    attack_seconds: float | None = _doc("seconds of the DAG attack")
    # -- classification (smooth classify, Cohen et al.)
    clean_accuracy: float | None = _doc("accuracy of the base model on clean inputs")
    smoothed_accuracy: float | None = _doc("accuracy of the smoothed classifier (abstain: wrong)")
    abstain_rate: float | None = _doc("fraction of test inputs the smoothed classifier abstains on")
    certified_accuracy: float | None = _doc("fraction certified correct at the largest radius")
    certified_accuracy_at: Mapping[str, float] | None = _doc("certified accuracy per radius")
    mean_certified_radius: float | None = _doc("mean certified radius (0 when wrong or abstaining)")
    # -- regression (output bounds, §3.4)
    examples: int | None = _doc("test examples smoothed")
    unknown: int | None = _doc("examples left unknown")
    percentile_mean_width: float | None = _doc("mean width of the percentile bounds")
    percentile_label_certified: float | None = _doc(
        "fraction whose label's lower bound beats every other output's upper bound"
    )
    mean_mean_width: float | None = _doc("mean width of mean smoothing's bounds")
    mean_label_certified: float | None = _doc("the same fraction under mean smoothing")


def as_metrics(summary: SmoothingSummary) -> dict[str, Any]:
    """The JSON-ready metrics mapping (fields that are None are left out)."""
    return {k: v for k, v in attrs.asdict(summary, recurse=False).items() if v is not None}
