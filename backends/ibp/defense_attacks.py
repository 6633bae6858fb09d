"""Weak and strong patch attacks on preprocessing defences (§2.3.2, Tables 2.1-2.2).

The *weak* adversary ignores the defence: it optimises the patch against the bare classifier
and the result is then scored on the defended pipeline (the setting in which LGS and DW were
reported to work). The *strong* adversary optimises against the defended pipeline itself:
through LGS's smoothing by ordinary autograd, through DW by BPDA (identity backward). Both
search patch locations at the corners only or anywhere.
"""

from __future__ import annotations

import enum

import attrs
import torch
from torch import Tensor, nn

from .attack import AttackConfig, AttackMethod, LocationSearch, patch_attack
from .defenses import Defended, GradientMode
from .patches import PatchThreat


class Adversary(enum.Enum):
    WEAK = "weak"  # IFGSM on the bare model
    STRONG = "strong"  # IFGSM + defence (exact gradients or BPDA)


@attrs.frozen
class DefenseAttackConfig:
    steps: int = attrs.field(default=40, validator=attrs.validators.ge(1))
    step_size: float = attrs.field(default=0.1, validator=attrs.validators.gt(0.0))
    restarts: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    method: AttackMethod = AttackMethod.IFGSM
    chunk: int = attrs.field(default=64, validator=attrs.validators.ge(1))

    def attack(self, search: LocationSearch) -> AttackConfig:
        return AttackConfig(
            method=self.method,
            search=search,
            steps=self.steps,
            step_size=self.step_size,
            restarts=self.restarts,
            chunk=self.chunk,
        )


def defended_accuracy_under_attack(
    model: nn.Module,
    transform: nn.Module | None,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    adversary: Adversary,
    search: LocationSearch,
    cfg: DefenseAttackConfig = DefenseAttackConfig(),
    *,
    mode: GradientMode = GradientMode.EXACT,
    seed: int = 0,
) -> Tensor:
    """Per image: True when the defended pipeline still classifies correctly after the attack.

    ``transform=None`` means no defence. ``mode`` picks the strong adversary's backward pass
    (EXACT for LGS, BPDA for DW); the weak adversary never looks at the defence.
    """
    defended = model if transform is None else Defended(transform, model).eval()
    acfg = cfg.attack(search)
    if adversary is Adversary.WEAK or transform is None:
        res = patch_attack(model, x, y, threat, acfg, seed=seed)
    else:
        target = Defended(transform, model, mode).eval()
        res = patch_attack(target, x, y, threat, acfg, seed=seed)
    with torch.no_grad():
        return defended(res.adversarial).argmax(1) == y


def clean_accuracy(model: nn.Module, transform: nn.Module | None, x: Tensor, y: Tensor) -> float:
    defended = model if transform is None else Defended(transform, model).eval()
    with torch.no_grad():
        return float((defended(x).argmax(1) == y).float().mean())
