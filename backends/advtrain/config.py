"""The advtrain backend's option classes (what spec actions bind to) and method names.

Torch-free, so the light ``__init__`` and ``threatlang check`` can import it.
"""

from __future__ import annotations

import enum
import os
import re
from pathlib import Path

import attrs

_pos = attrs.validators.gt(0)
_nonneg = attrs.validators.ge(0)


class MethodKind(enum.Enum):
    STANDARD = "standard"
    PAT = "pat"  # sample-wise pyramid adversarial training with k steps
    UPAT = "upat"  # universal pyramid adversarial training (Algorithm 5)


_METHOD = re.compile(
    r"^(standard|upat|pat(\d+))((?:_no_clean_loss|_no_pyramid|_schedule)*)(?:_r(\d+(?:\.\d+)?))?$"
)


@attrs.frozen
class MethodSpec:
    """One model trained in a comparison. Ablations: no clean loss (Table 6.5), no pyramid
    (Table 6.3: a single per-pixel level); ``schedule`` forces the radius decay (6.5) on this
    method whatever the run's ``radius_schedule`` says (Table 6.1's two UPAT rows).
    ``radius`` (in /255 units in the label: ``upat_r4`` is 4/255) overrides the run's radius —
    one method per radius of a sweep (Tables 6.3/6.4)."""

    kind: MethodKind
    steps: int = 1
    clean_loss: bool = True
    pyramid: bool = True
    schedule: bool = False
    radius: float | None = None

    @property
    def label(self) -> str:
        base = f"pat{self.steps}" if self.kind is MethodKind.PAT else self.kind.value
        return (
            base
            + ("" if self.clean_loss else "_no_clean_loss")
            + ("" if self.pyramid else "_no_pyramid")
            + ("_schedule" if self.schedule else "")
            + ("" if self.radius is None else f"_r{round(self.radius * 255, 6):g}")
        )

    @classmethod
    def parse(cls, name: str) -> MethodSpec:
        """``standard``, ``upat``, ``pat<k>``; the last two optionally with ``_no_clean_loss``,
        ``_no_pyramid``, ``_schedule`` and a radius ``_r<n>`` (n/255)."""
        m = _METHOD.match(name)
        if m is None or (m.group(1) == "standard" and (m.group(3) or m.group(4))):
            raise ValueError(
                f"unknown method {name!r}: say standard, upat or pat<k> (e.g. pat2), "
                "optionally with _no_clean_loss, _no_pyramid, _schedule and _r<radius/255>"
            )
        kind = MethodKind.PAT if m.group(2) else MethodKind(m.group(1))
        steps = int(m.group(2)) if m.group(2) else 1
        if steps < 1:
            raise ValueError(f"{name!r}: PAT needs at least one step")
        flags = m.group(3)
        return cls(
            kind,
            steps,
            "_no_clean_loss" not in flags,
            "_no_pyramid" not in flags,
            "_schedule" in flags,
            None if m.group(4) is None else float(m.group(4)) / 255,
        )


def _methods(_inst: object, _attr: attrs.Attribute, value: tuple[str, ...]) -> None:
    for name in value:
        MethodSpec.parse(name)


@attrs.frozen
class AdvTrainOptions:
    """``train standard|pyramid|universal_pyramid { ... }`` knobs beyond epochs, lr, batch, warmup.

    ``compare`` lists the other models trained side by side with the spec's strategy (the
    baseline is always ``standard``; it is added when missing, since mCE is relative to it).
    """

    compare: tuple[str, ...] = attrs.field(default=("standard", "pat1"), validator=_methods)
    steps: int = attrs.field(default=1, validator=_pos)  # k of `train pyramid`
    pat_radius: float | None = None  # PAT's radius; default: the threat's radius
    step_size: float | None = None  # UPAT's tau; default radius / 80
    adv_weight: float = attrs.field(default=1.0, validator=_pos)  # lambda in (6.2)/(6.4)
    clean_loss: bool = True
    pyramid: bool = True
    radius_schedule: bool = False  # (6.5): decay linearly to radius_end
    radius_end: float | None = None  # default 0.1 * radius
    schedule_start: int | None = None  # epoch where the decay begins; default 10% of training
    weight_decay: float = attrs.field(default=0.05, validator=_nonneg)
    augment: bool = False  # random shifts of up to 2 pixels
    threads: int = attrs.field(default=1, validator=_pos)  # torch CPU threads during the run
    #: a radius sweep (Tables 6.3/6.4): every adversarial method is trained once per radius
    radii: tuple[float, ...] = attrs.field(default=())

    @radii.validator
    def _radii(self, _a: attrs.Attribute, value: tuple[float, ...]) -> None:
        if any(r <= 0 for r in value) or len(set(value)) != len(value):
            raise ValueError(f"radii must be distinct positive radii, got {value}")


#: the corruptions of ``corruptions.Corruption`` (kept here so this module stays torch-free)
CORRUPTION_NAMES = (
    "gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise",
    "gaussian_blur", "defocus_blur", "contrast", "brightness", "pixelate",
    "glass_blur", "motion_blur", "zoom_blur", "snow", "frost", "fog", "elastic_transform",
    "jpeg_compression",
)  # fmt: skip
#: the 15 corruptions ImageNet-C's mCE averages (``corruptions.BENCHMARK``): the default suite
BENCHMARK_NAMES = (
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur",
    "motion_blur", "zoom_blur", "snow", "frost", "fog", "brightness", "contrast",
    "elastic_transform", "pixelate", "jpeg_compression",
)  # fmt: skip


def _corruption_names(_inst: object, _attr: attrs.Attribute, value: tuple[str, ...]) -> None:
    unknown = [v for v in value if v not in CORRUPTION_NAMES]
    if unknown:
        raise ValueError(
            f"unknown corruptions {unknown}; choose from {', '.join(CORRUPTION_NAMES)}"
        )


@attrs.frozen
class CorruptionOptions:
    """``evaluate corruptions { ... }``: which ImageNet-C corruptions (default: the benchmark's
    15), which severities; mCE is normalised by the fixed reference model cached under
    ``reference_cache`` (default ``$THREATLANG_CACHE`` or ``~/.cache/threatlang``, then
    ``mce-reference``)."""

    corruptions: tuple[str, ...] = attrs.field(default=BENCHMARK_NAMES, validator=_corruption_names)
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)
    seed: int = 0
    batch_size: int = attrs.field(default=512, validator=_pos)
    reference_cache: str | None = None

    def __attrs_post_init__(self) -> None:
        if not self.severities or any(s not in (1, 2, 3, 4, 5) for s in self.severities):
            raise ValueError(f"severities are 1..5, got {self.severities}")


class AttackNorm(enum.Enum):
    LINF = "linf"
    L2 = "l2"


@attrs.frozen
class AttackOptions:
    """``attack pgd|ifgsm { ... }`` knobs beyond steps, step_size and restarts."""

    eps: tuple[float, ...] = ()  # default: the threat's radii (l-p ball) or radius (pyramid)
    norm: AttackNorm | None = None  # default: the threat's norm
    examples: int | None = None  # attack the first N test examples (default all)


def default_cache_dir() -> str:
    """Where the mCE reference model is cached: ``$THREATLANG_CACHE/mce-reference``, else
    ``~/.cache/threatlang/mce-reference``."""
    base = os.environ.get("THREATLANG_CACHE") or os.path.join("~", ".cache", "threatlang")
    return str(Path(base).expanduser() / "mce-reference")
