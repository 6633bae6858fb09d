"""Clean accuracy, corruption accuracy and mean corruption error (mCE).

mCE follows ImageNet-C: for each corruption c, CE_c = sum_s err_f(c, s) / sum_s err_ref(c, s),
and mCE is the mean of CE_c over corruptions. ImageNet-C normalises by AlexNet; here the
reference is a fixed small CNN trained deterministically once per data set and cached
(`reference`), so mCE is comparable across runs and methods — the standard model's mCE is a
measurement, not 100% by construction. Every model sees the same corrupted images: each
(corruption, severity, batch) is drawn from its own named random stream, and each corrupted
batch is made once and scored by every model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs
import torch
from torch import Tensor, nn

from threatlang.runtime import generator

from .corruptions import BENCHMARK, SEVERITIES, Corruption, corrupt

Errors = Mapping[tuple[Corruption, int], float]


@attrs.frozen
class CorruptionSuite:
    corruptions: tuple[Corruption, ...] = BENCHMARK
    severities: tuple[int, ...] = SEVERITIES
    seed: int = 0

    def key(self) -> str:
        """A stable name of the suite (for caching the reference model's errors)."""
        kinds = ",".join(k.value for k in self.corruptions)
        return f"{kinds}|{','.join(map(str, self.severities))}|{self.seed}"


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
    return corruption_errors_many({"model": model}, x, y, suite, batch_size)["model"]


def corruption_errors_many(
    models: Mapping[str, nn.Module],
    x: Tensor,
    y: Tensor,
    suite: CorruptionSuite,
    batch_size: int = 512,
) -> dict[str, dict[tuple[Corruption, int], float]]:
    """Error rates of every model on the same corrupted images (each batch corrupted once)."""
    wrong = {label: {} for label in models}
    modes = {label: m.training for label, m in models.items()}
    for m in models.values():
        m.eval()
    try:
        for kind in suite.corruptions:
            for sev in suite.severities:
                counts = dict.fromkeys(models, 0)
                for i in range(0, len(x), batch_size):
                    stream = f"corrupt/{kind.value}/{sev}/{i}"
                    g = generator(suite.seed, stream, x.device)
                    xc = corrupt(x[i : i + batch_size], kind, sev, g)
                    with torch.no_grad():
                        for label, m in models.items():
                            pred = m(xc).argmax(1)
                            counts[label] += int((pred != y[i : i + batch_size]).sum())
                for label in models:
                    wrong[label][(kind, sev)] = counts[label] / len(x)
    finally:
        for label, m in models.items():
            m.train(modes[label])
    return wrong


def corruption_accuracy(errors: Errors) -> float:
    """Mean accuracy over all corruptions and severities."""
    return 1.0 - sum(errors.values()) / len(errors)


def corruption_error_by_kind(errors: Errors, baseline: Errors) -> dict[Corruption, float]:
    """CE_c = sum_s err(c, s) / sum_s err_ref(c, s); NaN where the reference makes no error."""
    out: dict[Corruption, float] = {}
    for kind in dict.fromkeys(k for k, _ in errors):
        num = sum(e for (k, _), e in errors.items() if k is kind)
        den = sum(e for (k, _), e in baseline.items() if k is kind)
        out[kind] = num / den if den > 0 else math.nan
    return out


def mean_corruption_error(errors: Errors, baseline: Errors) -> float:
    """mCE relative to ``baseline`` (1.0 = as robust as the reference; lower is better)."""
    ce = [v for v in corruption_error_by_kind(errors, baseline).values() if not math.isnan(v)]
    return sum(ce) / len(ce) if ce else math.nan
