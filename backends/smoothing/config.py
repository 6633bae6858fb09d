"""Backend-specific option classes (frozen attrs), bound from a spec's option blocks.

Light: no torch.  Each class documents the knob it adds beyond the language's fixed fields.
"""

from __future__ import annotations

import enum

import attrs

__all__ = [
    "DetectorTraining",
    "NoisyTraining",
    "Outputs",
    "RegressionSmoothOptions",
    "ClassifierTrainOptions",
    "ClassifySmoothOptions",
    "DagOptions",
    "DetectionSmoothOptions",
    "DetectorTrainOptions",
    "SceneDataOptions",
    "Sort",
    "Bin",
]


class Sort(enum.Enum):
    OBJECTNESS = "objectness"
    LOCATION = "location"


class Bin(enum.Enum):
    NONE = "none"
    LABEL = "label"
    LOCATION = "location"
    LABEL_LOCATION = "label_location"


def _unit(instance, attribute, value) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{attribute.name} must lie in [0, 1], got {value}")


@attrs.frozen
class SceneDataOptions:
    """``data scenes { ... }``: how many synthetic scenes, how large, how crowded."""

    train_count: int = attrs.field(default=2000, validator=attrs.validators.ge(1))
    size: int = attrs.field(default=32, validator=attrs.validators.ge(16))
    max_objects: int = attrs.field(default=3, validator=attrs.validators.ge(1))


@attrs.frozen
class DetectorTrainOptions:
    """``train standard { ... }`` for the builtin detector.

    ``noise`` trains on ``x + N(0, s^2)``, ``s ~ U(0, noise)`` (Gaussian augmentation, the usual
    companion of smoothing); 0 trains on clean scenes as §3.6 does.  ``denoiser_epochs`` trains the
    DnCNN when the encoding names ``denoiser "dncnn"``.
    """

    noise: float = attrs.field(default=0.0, validator=attrs.validators.ge(0.0))
    denoiser_epochs: int = attrs.field(default=6, validator=attrs.validators.ge(1))


@attrs.frozen
class DetectionSmoothOptions:
    """``smooth median { ... }`` extras for detection.

    ``thresholds``: objectness thresholds for (certified) precision/recall (§3.6).
    ``headline_sort`` / ``headline_bin``: the combination reported as ``smoothed_ap50`` and
    ``certified_ap50`` (default: the first listed sort and bin).
    ``simultaneous``: the spec's confidence covers every bound of an image at once (all slots,
    coordinates, sides, thresholds and encodings, by a union bound) instead of each bound on its
    own as in §3.5.
    """

    thresholds: tuple[float, ...] = (0.1, 0.2, 0.4, 0.6, 0.8)
    headline_sort: Sort | None = None
    headline_bin: Bin | None = None
    plot_images: int = attrs.field(default=4, validator=attrs.validators.ge(0))
    simultaneous: bool = False

    def __attrs_post_init__(self) -> None:
        if not self.thresholds or any(not 0.0 <= t <= 1.0 for t in self.thresholds):
            raise ValueError(f"thresholds must be non-empty and in [0, 1], got {self.thresholds}")


@attrs.frozen
class DagOptions:
    """``attack smoothing_aware { ... }``: DAG-style PGD on the smoothed detector (§3.6).

    The gradient of the smoothed model is estimated with ``noise_samples`` draws per step; the
    attacked input is then re-smoothed with the full sample count on ``images`` test images.
    """

    noise_samples: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    images: int = attrs.field(default=10, validator=attrs.validators.ge(1))


@attrs.frozen
class ClassifierTrainOptions:
    """``train standard { ... }`` for the builtin smoothed classifier: Gaussian augmentation
    with standard deviation ``noise`` (default: the smoothing sigma, as Cohen et al. train)."""

    noise: float | None = None


@attrs.frozen
class ClassifySmoothOptions:
    """``smooth classify { ... }``: ``n0`` selection samples that pick the top class before the
    ``samples`` estimation draws bound its probability (kept apart, as CERTIFY requires)."""

    n0: int = attrs.field(default=100, validator=attrs.validators.ge(1))


class Outputs(enum.Enum):
    LOGITS = "logits"
    SOFTMAX = "softmax"


@attrs.frozen
class RegressionSmoothOptions:
    """``smooth median|percentile|mean { ... }`` with ``require output_bounds``.

    ``outputs``: certify the model's raw outputs or their softmax (a bounded regression in
    ``[0, 1]``, where mean smoothing (Corollary 3.0.1) applies too).  ``low`` / ``high``: the
    output range mean smoothing needs (clipped to it); ignored by percentile smoothing.
    ``compare_mean``: next to percentile smoothing, also report mean smoothing's bounds.
    """

    outputs: Outputs = Outputs.SOFTMAX
    low: float = 0.0
    high: float = 1.0
    compare_mean: bool = True


@attrs.frozen
class NoisyTraining:
    """The resolved training of the builtin smoothed classifier (shown by the plan): Gaussian
    augmentation with standard deviation ``noise`` (the smoothing sigma unless the spec says)."""

    epochs: int
    lr: float
    batch_size: int
    noise: float


@attrs.frozen
class DetectorTraining:
    """The resolved training of the builtin detector and (with ``denoiser "dncnn"``) its DnCNN.

    ``noise_max``: train on ``x + N(0, s^2)``, ``s ~ U(0, noise_max)`` (0: clean scenes, §3.6)."""

    epochs: int
    batch_size: int
    lr: float
    noise_max: float
    denoiser_epochs: int
