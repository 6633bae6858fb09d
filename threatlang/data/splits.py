"""Containers for loaded data (numpy only; backends turn them into tensors)."""

from __future__ import annotations

import attrs
import numpy as np


def _check_xy(instance, attribute, value) -> None:
    if len(instance.x) != len(instance.y):
        raise ValueError(f"x has {len(instance.x)} examples but y has {len(instance.y)}")


@attrs.frozen
class ArrayDataset:
    x: np.ndarray  # float32, (N, C, H, W) or (N, features), values in [0, 1]
    y: np.ndarray = attrs.field(validator=_check_xy)  # int64, (N,)

    def __len__(self) -> int:
        return len(self.y)

    def take(self, limit: int | None) -> ArrayDataset:
        return self if limit is None else ArrayDataset(self.x[:limit], self.y[:limit])


@attrs.frozen
class DataSplits:
    name: str
    train: ArrayDataset
    test: ArrayDataset
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])
