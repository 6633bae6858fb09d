"""Small networks covering every op the bound engine lowers, written the ways users write them."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threatlang.backends.ibp.layers import Residual

SHAPE = (2, 6, 6)  # every zoo net takes (N, 2, 6, 6) inputs and returns 4 logits


def _bn(n: int) -> nn.BatchNorm2d:
    bn = nn.BatchNorm2d(n)
    bn.running_mean.normal_(0, 0.3)
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.normal_(0, 0.2)
    return bn


class SkipSequential(nn.Sequential):
    """A user's Sequential subclass whose forward adds a skip connection (issue #13's
    unsound example: bounded as the plain Sequential, the skip was silently dropped)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x) + x


class Normalize(nn.Module):
    def __init__(self, mean: Tensor, std: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std


class ResidualInForward(nn.Module):
    """Residual additions written in forward, functional ReLU and view-flatten."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.a = nn.Conv2d(4, 4, 3, padding=1)
        self.b = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4 * 6 * 6, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.stem(x))
        h = h + self.b(torch.relu(self.a(h)))
        h = h.relu()
        return self.head(h.view(h.size(0), -1))


class TwoBranches(nn.Module):
    """Concatenation of two branches, and scaling by constants."""

    def __init__(self) -> None:
        super().__init__()
        self.left = nn.Conv2d(2, 3, 3, padding=1)
        self.right = nn.Conv2d(2, 3, 1)
        self.head = nn.Sequential(nn.ReLU(), nn.Flatten(), nn.Linear(6 * 36, 8), nn.ReLU())
        self.out = nn.Linear(8, 4)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.cat([self.left(x), 0.5 * self.right(x) - 0.1], dim=1)
        return self.out(self.head(h))


def mlp() -> nn.Module:
    return nn.Sequential(
        nn.Flatten(), nn.Linear(72, 16), nn.ReLU(), nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 4)
    )


def cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=1, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 3 * 3, 10),
        nn.ReLU(),
        nn.Linear(10, 4),
    )


def bn_avgpool() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        _bn(4),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 4),
    )


def maxpool() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 3 * 3, 8),
        nn.ReLU(),
        nn.Linear(8, 4),
    )


def residual_block() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1))),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 36, 4),
    )


def skip_sequential() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        nn.ReLU(),
        SkipSequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1)),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 36, 4),
    )


def normalised() -> nn.Module:
    mean = torch.tensor([0.4, 0.6]).reshape(1, 2, 1, 1)
    std = torch.tensor([0.25, 0.5]).reshape(1, 2, 1, 1)
    return nn.Sequential(Normalize(mean, std), *cnn())


ZOO: dict[str, Callable[[], nn.Module]] = {
    "mlp": mlp,
    "cnn": cnn,
    "bn_avgpool": bn_avgpool,
    "maxpool": maxpool,
    "residual_block": residual_block,
    "residual_in_forward": ResidualInForward,
    "skip_sequential": skip_sequential,
    "normalised": normalised,
    "two_branches": TwoBranches,
}


def build(name: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return ZOO[name]().eval()


def inputs(n: int = 3, seed: int = 0) -> Tensor:
    return torch.rand((n, *SHAPE), generator=torch.Generator().manual_seed(seed))
