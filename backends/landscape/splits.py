"""Few-shot problems cut from a labelled data set (§7.4.2: 2 classes, 2-32 samples; §7.4.3:
10 classes, 100-1000 samples).

Each trial draws a class-balanced training set of ``n`` samples from the training split
(``n // K`` per class, the remainder to the first classes) and scores on every test-split
example. Labels are ``0 .. K-1`` (the data loader relabels a `classes [...]` selection).
"""

from __future__ import annotations

import attrs
import numpy as np
import torch


@attrs.frozen
class FewShot:
    """One trial's tensors (on the run's device)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def _select(
    x: np.ndarray, y: np.ndarray, classes: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    keep = np.isin(y, classes)
    relabel = {c: i for i, c in enumerate(classes)}
    return x[keep], np.array([relabel[int(c)] for c in y[keep]], dtype=np.int64)


def two_class_pool(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    classes: tuple[int, int],
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Restrict both splits to ``classes`` (relabelled 0, 1)."""
    if len(set(classes)) != 2:
        raise ValueError(f"need two distinct classes, got {classes}")
    return _select(x_train, y_train, classes), _select(x_test, y_test, classes)


def sample_few_shot(
    pool: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]],
    samples: int,
    seed: int,
    device: torch.device | str = "cpu",
    test_limit: int | None = None,
) -> FewShot:
    """A balanced ``samples``-point training set (``samples // K`` per class, the remainder to
    the first classes), drawn with a numpy generator seeded by ``seed``."""
    (xtr, ytr), (xte, yte) = pool
    rng = np.random.default_rng(seed)
    k = int(max(ytr.max(), yte.max())) + 1
    per_class = [samples // k + (1 if c < samples % k else 0) for c in range(k)]
    idx = []
    for c, count in enumerate(per_class):
        members = np.flatnonzero(ytr == c)
        if count > len(members):
            raise ValueError(f"class {c} has {len(members)} training examples, need {count}")
        idx.extend(rng.choice(members, size=count, replace=False).tolist())
    idx = np.array(idx, dtype=np.int64)
    test_idx = np.arange(len(yte)) if test_limit is None else rng.permutation(len(yte))[:test_limit]

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(a, device=device)

    return FewShot(t(xtr[idx]).float(), t(ytr[idx]), t(xte[test_idx]).float(), t(yte[test_idx]))
