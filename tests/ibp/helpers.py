"""Small networks and data shared by the ibp tests."""

from __future__ import annotations

import torch
from torch import nn

from threatlang.backends.ibp.layers import Residual


def every_layer_net(seed: int = 0) -> nn.Sequential:
    """One of each supported layer, BN with non-trivial running statistics, eval mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, 2, 1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        Residual(nn.Sequential(nn.Conv2d(4, 4, 3, 1, 1), nn.ReLU())),
        nn.MaxPool2d(2, 1, padding=1),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 16),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(16, 10),
    )
    net[1].running_mean.normal_()
    net[1].running_var.uniform_(0.5, 2.0)
    return net.eval()


def conv_net(size: int, seed: int = 0) -> nn.Sequential:
    """Strided convs, a -inf padded max-pool and BN: exercises every local-engine case."""
    torch.manual_seed(seed)
    out = (size + 2 - 3) // 2 + 1
    out = (out + 2 - 4) // 2 + 1
    out = out - 1
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3, 2, 1),
        nn.ReLU(),
        nn.MaxPool2d(3, 1, padding=1),
        nn.Conv2d(4, 6, 4, 2, 1),
        nn.AvgPool2d(2, 1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * out * out, 16),
        nn.ReLU(),
        nn.Linear(16, 10),
    )
    net[5].running_mean.normal_()
    net[5].running_var.uniform_(0.5, 2.0)
    return net.eval()


def digits(n_train: int = 600, n_test: int = 120, seed: int = 0):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    tr, te = perm[:n_train], perm[n_train : n_train + n_test]
    return x[tr], y[tr], x[te], y[te]
