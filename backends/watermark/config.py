"""The watermark backend's enums and the option classes its spec actions bind to.

Kept free of torch so the backend's light ``__init__`` (and ``threatlang check``) can import it.
"""

from __future__ import annotations

import enum

import attrs

_pos = attrs.validators.gt(0)
_nonneg = attrs.validators.ge(0)


class TriggerKind(enum.Enum):
    """The trigger-set schemes of [113] (§5.3.1, Figure 5.2)."""

    TEXT = "text"  # embedded content: text drawn over training images
    NOISE = "noise"  # one pre-specified Gaussian pattern over training images
    UNRELATED = "unrelated"  # images from another domain


class TriggerStep(enum.Enum):
    """``AVERAGED``: one step per trigger batch, gradient averaged over all replay·samples draws
    (Algorithm 2). ``PER_LEVEL``: one step per noise level (the reference code's variant)."""

    AVERAGED = "averaged"
    PER_LEVEL = "per_level"


class RegularData(enum.Enum):
    """What the regular (noise-free) steps of Algorithm 2 train on: ``TRAIN``, the training set
    X alone as in the chapter; ``TRAIN_AND_TRIGGER``, X mixed with the trigger set."""

    TRAIN = "train"
    TRAIN_AND_TRIGGER = "train_and_trigger"


class NoiseStrategy(enum.Enum):
    """How draws of parameter noise are evaluated: ``VMAP`` maps a chunk of draws through one
    ``torch.func.vmap`` call, ``LOOP`` makes one functional call per draw, ``AUTO`` times both on
    one chunk and keeps the faster (vmap pays for linear layers and on GPUs; on CPUs it turns
    convolutions into slower grouped ones)."""

    AUTO = "auto"
    VMAP = "vmap"
    LOOP = "loop"


class RemovalKind(enum.Enum):
    FINETUNE = "finetune"
    DISTILL_HARD = "distill_hard"
    DISTILL_SOFT = "distill_soft"


@attrs.frozen
class WatermarkTrainOptions:
    """``train watermark { ... }`` knobs beyond epochs, lr, batch_size and warmup."""

    trigger: TriggerKind = TriggerKind.TEXT
    trigger_size: int = attrs.field(default=64, validator=_pos)
    target_label: int = attrs.field(default=4, validator=_nonneg)
    text: str = "WM"
    replay: int = attrs.field(default=4, validator=_pos)  # k noise levels σ_i = (i/k)·σ_max
    noise_samples: int = attrs.field(default=8, validator=_pos)  # t draws per level
    max_sigma: float | None = attrs.field(  # default: the smooth action's sigma
        default=None, validator=attrs.validators.optional(_pos)
    )
    momentum: float = attrs.field(default=0.9, validator=_nonneg)
    weight_decay: float = attrs.field(default=1e-4, validator=_nonneg)
    lr_decay_epoch: int | None = None  # lr ÷ 10 from this epoch on
    trigger_batch_size: int = attrs.field(default=32, validator=_pos)
    step: TriggerStep = TriggerStep.AVERAGED
    regular_data: RegularData = RegularData.TRAIN  # Algorithm 2: regular steps on X only
    baseline: bool = True  # also train the baseline watermark (no noise) for comparison
    owner_fraction: float = attrs.field(default=0.5, validator=[_pos, attrs.validators.le(1.0)])


@attrs.frozen
class WatermarkSmoothOptions:
    """``smooth median { ... }`` knobs beyond sigma, samples, confidence and batch_size."""

    probe_samples: int = attrs.field(default=64, validator=_pos)  # white-box checks in attacks
    noise_strategy: NoiseStrategy = NoiseStrategy.AUTO


@attrs.frozen
class RemovalOptions:
    """``attack finetune|distill_hard|distill_soft { steps EPOCHS step_size LR ... }``."""

    regularization: float = attrs.field(default=0.0, validator=_nonneg)  # weight decay
    reg_epochs: int = attrs.field(default=1, validator=_nonneg)  # epochs with regularisation
    batch_size: int = attrs.field(default=64, validator=_pos)


@attrs.frozen
class ParameterPGDOptions:
    """``attack parameter_pgd { steps N step_size A ... }``, run at every radius of the ball."""

    noise_samples: int = attrs.field(default=8, validator=_nonneg)  # EOT draws per step
    test_examples: int = attrs.field(default=256, validator=_pos)  # for worst-case test accuracy
