"""Shared small problems for the landscape tests (fast: a handful of 2-D points)."""

import pytest
import torch

from threatlang.backends.landscape.models import FlatModel, mlp


@pytest.fixture
def blobs() -> tuple[torch.Tensor, torch.Tensor]:
    """Eight separable 2-D points, two classes split by the sign of the first coordinate."""
    x = torch.tensor(
        [
            [-0.9, 0.3],
            [-0.5, -0.7],
            [-0.3, 0.8],
            [-0.7, -0.1],
            [0.4, 0.5],
            [0.8, -0.6],
            [0.3, -0.2],
            [0.6, 0.9],
        ]
    )
    return x, (x[:, 0] > 0).long()


@pytest.fixture
def small_model() -> FlatModel:
    return FlatModel(mlp(2, (6,), 2))
