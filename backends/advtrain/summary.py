"""The typed schema of an advtrain run's summary metrics (declared in the capabilities).

Torch-free. Accuracies are fractions of the test split; mCE is ImageNet-C's mean corruption
error normalised by the fixed reference CNN (`reference`), a fraction where 1.0 means "as
robust as the reference" and lower is better.
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class AdvTrainSummary:
    """Summary metrics of a side-by-side comparison (Tables 6.1-6.5) or of a given model."""

    #: the label of the spec's own strategy (e.g. "upat"; "model" for a given model)
    main_method: str
    #: its clean test accuracy, mean accuracy over the corruption suite, and its mCE
    clean_accuracy: float
    corruption_accuracy: float | None
    mce: float | None
    #: label -> {"clean_accuracy", "corruption_accuracy", "mce", "mce_vs_standard",
    #: "seconds_per_epoch" (median, s), "passes_per_step" (fwd+bwd example passes per
    #: training example), "calls_per_step", "cost_ratio" (seconds per epoch / standard's)}
    methods: dict[str, dict[str, Any]]
    #: the standard model's clean accuracy (None without one)
    baseline_clean_accuracy: float | None = None
    #: the mCE reference model's clean and corrupted accuracy on this data
    reference_clean_accuracy: float | None = None
    reference_corruption_accuracy: float | None = None
    #: UPAT's and each PAT-k's seconds per epoch relative to standard training
    upat_cost_ratio: float | None = None
    pat_cost_ratios: dict[str, float] | None = None
    #: label -> "attack_norm@eps" -> robust accuracy (empirical, not certified)
    robust_accuracy: dict[str, dict[str, float]] | None = None


__all__ = ["AdvTrainSummary"]
