"""Clean accuracy, corruption accuracy and mean corruption error (mCE).

mCE follows ImageNet-C: for each corruption c, CE_c = sum_s err_f(c, s) / sum_s err_base(c, s),
and mCE is the mean of CE_c over corruptions. Here the reference is the standard-trained model
of the same run (ImageNet-C uses AlexNet), so the baseline's mCE is 1 and lower is better.
Every model sees the same corrupted images: each (corruption, severity, batch) has its own seed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs
import torch
from torch import Tensor, nn

from .corruptions import SEVERITIES, Corruption, corrupt

Errors = Mapping[tuple[Corruption, int], float]


@attrs.frozen
class CorruptionSuite:
    corruptions: tuple[Corruption, ...] = tuple(Corruption)
    severities: tuple[int, ...] = SEVERITIES
    seed: int = 0


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Arg-max labels, batched; the model is put in eval mode and restored."""
    was_training = model.training
    model.eval()
    try:
        return torch.cat(
            [model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)]
        )
    finally:
        model.train(was_training)


def accuracy(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 512) -> float:
    return float((predict(model, x, batch_size) == y).float().mean())


def corruption_errors(
    model: nn.Module, x: Tensor, y: Tensor, suite: CorruptionSuite, batch_size: int = 512
) -> dict[tuple[Corruption, int], float]:
    """Error rate of ``model`` under every (corruption, severity) of ``suite``."""
    out: dict[tuple[Corruption, int], float] = {}
    kinds = list(Corruption)
    was_training = model.training
    model.eval()
    try:
        for kind in suite.corruptions:
            for sev in suite.severities:
                wrong = 0
                for i in range(0, len(x), batch_size):
                    seed = ((suite.seed * 97 + kinds.index(kind)) * 11 + sev) * 1_000_003 + i
                    g = torch.Generator(device=x.device).manual_seed(seed)
                    with torch.no_grad():
                        pred = model(corrupt(x[i : i + batch_size], kind, sev, g)).argmax(1)
                    wrong += int((pred != y[i : i + batch_size]).sum())
                out[(kind, sev)] = wrong / len(x)
    finally:
        model.train(was_training)
    return out


def corruption_accuracy(errors: Errors) -> float:
    """Mean accuracy over all corruptions and severities."""
    return 1.0 - sum(errors.values()) / len(errors)


def corruption_error_by_kind(errors: Errors, baseline: Errors) -> dict[Corruption, float]:
    """CE_c = sum_s err(c, s) / sum_s err_base(c, s); NaN where the baseline makes no error."""
    out: dict[Corruption, float] = {}
    for kind in dict.fromkeys(k for k, _ in errors):
        num = sum(e for (k, _), e in errors.items() if k is kind)
        den = sum(e for (k, _), e in baseline.items() if k is kind)
        out[kind] = num / den if den > 0 else math.nan
    return out


def mean_corruption_error(errors: Errors, baseline: Errors) -> float:
    """mCE relative to ``baseline`` (1.0 = as robust as the baseline; lower is better)."""
    ce = [v for v in corruption_error_by_kind(errors, baseline).values() if not math.isnan(v)]
    return sum(ce) / len(ce) if ce else math.nan
