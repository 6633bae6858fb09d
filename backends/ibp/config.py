"""Backend options a spec may give in action blocks, bound by ``bind_options`` (no torch here)."""

from __future__ import annotations

import enum

import attrs


class PatchEngine(enum.Enum):
    """Patch bound engine: receptive-field windows, dense boxes, or chosen by image size."""

    AUTO = "auto"
    LOCAL = "local"
    DENSE = "dense"

    def flag(self) -> bool | None:
        return {PatchEngine.AUTO: None, PatchEngine.LOCAL: True, PatchEngine.DENSE: False}[self]


class Engine(enum.Enum):
    """Which bound engine: ours (traced graph, fast batched patch path), auto_LiRPA (optional
    dependency), or ``auto``: ours where ours can bound the graph, auto_LiRPA where only it can."""

    AUTO = "auto"
    OURS = "ours"
    AUTO_LIRPA = "auto_lirpa"


class Slope(enum.Enum):
    """CROWN's lower ReLU slope: ``zero`` is never looser than IBP, ``adaptive`` often tighter,
    ``optimized`` chooses them by gradient ascent on the bound (alpha-CROWN)."""

    ZERO = "zero"
    ADAPTIVE = "adaptive"
    OPTIMIZED = "optimized"


class Intermediate(enum.Enum):
    """Pre-activation bounds CROWN relaxes ReLUs with: back-substituted, or IBP (CROWN-IBP)."""

    CROWN = "crown"
    IBP = "ibp"


def _pos(instance, attribute, value) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, got {value}")


@attrs.frozen
class TrainOptions:
    patch: int | None = attrs.field(default=None, validator=_pos)  # train on square(patch)
    halve_every: int | None = attrs.field(default=None, validator=_pos)  # epochs; §2.7.1: 10%
    chunk: int = attrs.field(default=1024, validator=_pos)
    # chapter-2 strategies (see .strategies): pooled_patch block sizes per layer, e.g. 4 or
    # (2, 2); guided_patch's U-net width, its Adam rate, and the sampling temperature
    pool: tuple[int, ...] = (2,)
    unet_width: int = attrs.field(default=16, validator=_pos)
    unet_lr: float = 1e-3
    temperature: float = 1.0


@attrs.frozen
class CertifyOptions:
    chunk: int = attrs.field(default=256, validator=_pos)  # placements bounded at once
    batch: int = attrs.field(default=64, validator=_pos)
    patch_engine: PatchEngine = PatchEngine.AUTO  # ours: receptive-field or dense boxes
    engine: Engine = Engine.AUTO
    slope: Slope = Slope.ZERO
    intermediate: Intermediate = Intermediate.CROWN


@attrs.frozen
class AttackOptions:
    max_locations: int | None = attrs.field(default=None, validator=_pos)
    chunk: int = attrs.field(default=64, validator=_pos)


@attrs.frozen
class ModelOptions:
    width: float = 1.0  # scales the builtin architecture's channels and neurons
