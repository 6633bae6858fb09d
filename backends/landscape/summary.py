"""The typed schema of a landscape run's summary metrics (declared in the capabilities).

Torch-free. Accuracies are fractions in [0, 1] of the held-out test examples of the chosen
classes; "best" follows the chapter's tables: the highest mean over the loss bins that at least
half of the trials filled. Keys of per-size maps are the training-set size as a string, or
``"w<width>/n<size>"`` when the study scales the model's width (Table 7.6).
"""

from __future__ import annotations

from typing import Any

import attrs


@attrs.frozen
class LandscapeSummary:
    """Summary metrics of `evaluate volume` (Tables 7.1-7.4, 7.6) and `evaluate wedge` (§7.3).

    Every field is None when its evaluation did not run."""

    #: training-set sizes of the grid
    samples: list[int] | None = None
    #: the model widths of a Table 7.6 study (None: the spec's model only)
    widths: list[float] | None = None
    #: the normalised-loss bins, as "[low, high)" labels
    loss_bins: list[str] | None = None
    #: the largest training-set size, at which `accuracy` is reported
    accuracy_at_samples: int | None = None
    #: optimizer -> best test accuracy at `accuracy_at_samples` (first width)
    accuracy: dict[str, float | None] | None = None
    #: optimizer -> standard error of that cell (over trials)
    accuracy_se: dict[str, float | None] | None = None
    #: optimizer -> size key -> best test accuracy
    accuracy_by_samples: dict[str, dict[str, float | None]] | None = None
    #: optimizer (not SGD) -> size key -> {"bins": labels both filled, "accuracy",
    #: "sgd_accuracy", "gap"}: both bests over the bins matched with SGD
    matched_accuracy: dict[str, dict[str, dict[str, Any]]] | None = None
    #: optimizer (not SGD) -> size key -> per bin {"window", "mean", "se", "count"}: the mean
    #: paired difference (optimizer - SGD) over trials where both filled the bin
    paired_gaps: dict[str, dict[str, list[dict[str, Any]]]] | None = None
    #: optimizer -> size key -> per bin {"window", "mean", "se", "count"}
    loss_bin_tables: dict[str, dict[str, list[dict[str, Any]]]] | None = None
    #: size key -> per bin mean log10(1 / guesses) of Guess & Check (§7.6's volume estimate)
    guess_and_check_log10_volume: dict[str, list[float | None]] | None = None
    #: size key -> the poisoned model's training / validation accuracy (Table 7.1)
    poison_train_accuracy: dict[str, float | None] | None = None
    poison_val_accuracy: dict[str, float | None] | None = None
    #: method -> hidden width -> accuracy on fresh wedge points / on the test points (§7.3)
    wedge_population_accuracy: dict[str, dict[str, float | None]] | None = None
    wedge_test_accuracy: dict[str, dict[str, float | None]] | None = None


__all__ = ["LandscapeSummary"]
