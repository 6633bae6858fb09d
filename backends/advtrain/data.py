"""Embedded default data: scikit-learn's bundled 8x8 digits, upsampled to 32x32.

Pyramid scales need room (a 16x16 tile on an 8x8 image is one global shift), so the default
resizes the digits bilinearly to 32x32. The lead's ``threatlang.data`` loader serves specs; this
fallback keeps the backend's tests and benchmarks independent of it.
"""

from __future__ import annotations

import attrs
import numpy as np
import torch
import torch.nn.functional as F


@attrs.frozen
class Split:
    """Float32 NCHW images in [0, 1] and int64 labels."""

    x: np.ndarray
    y: np.ndarray


@attrs.frozen
class Splits:
    train: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])  # type: ignore[return-value]


def digits(size: int = 32, test_fraction: float = 0.2, seed: int = 0) -> Splits:
    """Digits (1,797 images, 10 classes) at ``size`` x ``size``, split with a seeded permutation."""
    from sklearn.datasets import load_digits

    raw = load_digits()
    x = torch.from_numpy(raw.images.astype(np.float32) / 16.0)[:, None]
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = raw.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    xs = x.numpy()
    return Splits(Split(xs[train], y[train]), Split(xs[test], y[test]), 10)
