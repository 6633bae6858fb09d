"""The classic smoothed classifier (Cohen et al. 2019), for comparison on classification.

PREDICT returns the top class or abstains; CERTIFY returns the top class with an l2 radius
``sigma Phi^-1(pA_lower)`` where ``pA_lower`` is a one-sided Clopper-Pearson bound.  Selection
samples (``n0``) are kept apart from estimation samples (``n``), so with probability at least
``1 - alpha`` a returned class is the smoothed classifier's prediction on the whole ball.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
from scipy import stats

from .sampling import noise_batches

__all__ = ["ABSTAIN", "ClassifyConfig", "SmoothedPrediction", "certify", "predict"]

ABSTAIN = -1


@attrs.frozen
class ClassifyConfig:
    sigma: float = attrs.field(validator=attrs.validators.gt(0.0))
    num_classes: int = attrs.field(validator=attrs.validators.ge(2))
    n0: int = 100
    n: int = 10_000
    alpha: float = 0.001
    batch_size: int = 256


@attrs.frozen
class SmoothedPrediction:
    label: int  # ABSTAIN when not certified
    radius: float  # 0.0 when abstaining
    p_lower: float
    nonfinite: int = 0  # noisy inputs whose outputs were NaN or infinite (no vote)


@torch.no_grad()
def _counts(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    n: int,
    config: ClassifyConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Votes per class, and (last entry) the samples whose outputs were not finite: argmax of
    a NaN row is an arbitrary class, so such a sample votes for none (sound: it can only lower
    the top class's count)."""
    counts = torch.zeros(config.num_classes + 1, dtype=torch.long, device=x.device)
    for batch in noise_batches(x, config.sigma, n, config.batch_size, generator):
        out = f(batch)
        finite = torch.isfinite(out).flatten(1).all(dim=1)
        labels = torch.where(finite, out.argmax(dim=1), config.num_classes)
        counts += torch.bincount(labels, minlength=config.num_classes + 1)
    return counts.cpu()


def _cp_lower(k: int, n: int, alpha: float) -> float:
    """One-sided Clopper-Pearson lower bound on a binomial proportion."""
    return 0.0 if k == 0 else float(stats.beta.ppf(alpha, k, n - k + 1))


def certify(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    config: ClassifyConfig,
    generator: torch.Generator,
) -> SmoothedPrediction:
    """CERTIFY: guess the top class on ``n0`` samples, bound its probability on ``n`` fresh ones."""
    top = int(_counts(f, x, config.n0, config, generator)[:-1].argmax())
    counts = _counts(f, x, config.n, config, generator)
    count, nonfinite = int(counts[top]), int(counts[-1])
    p_lower = _cp_lower(count, config.n, config.alpha)
    if p_lower <= 0.5:
        return SmoothedPrediction(ABSTAIN, 0.0, p_lower, nonfinite)
    radius = config.sigma * float(stats.norm.ppf(p_lower))
    return SmoothedPrediction(top, radius, p_lower, nonfinite)


def predict(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    config: ClassifyConfig,
    generator: torch.Generator,
) -> int:
    """PREDICT: the top class if a two-sided binomial test against the runner-up passes."""
    counts = _counts(f, x, config.n, config, generator)[:-1]
    top2 = torch.topk(counts, 2).values.tolist()
    p_value = stats.binomtest(top2[0], top2[0] + top2[1], 0.5).pvalue
    return int(counts.argmax()) if p_value <= config.alpha else ABSTAIN
