"""Small architectures and a flat-parameter view that scores many models in one call.

Gradient-free optimizers think of a network as a point ``theta`` in ``R^P``. ``FlatModel``
wraps an ``nn.Module`` template and evaluates a whole stack of parameter vectors
``(models, P)`` at once with ``torch.func.vmap`` over ``functional_call`` — batched matmuls
(and batched convolutions) instead of a Python loop over candidates.

>>> fm = FlatModel(mlp(64, (16,), 2))
>>> thetas = fm.sample_uniform(128, bound=1.0, generator=torch.Generator().manual_seed(0))
>>> fm.logits(thetas, torch.rand(10, 1, 8, 8)).shape
torch.Size([128, 10, 2])
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn
from torch.func import functional_call, vmap


def mlp(in_features: int, hidden: tuple[int, ...], classes: int) -> nn.Module:
    """Flatten -> (Linear -> ReLU)* -> Linear. ``hidden=()`` is the linear model of Table 7.2."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, classes))
    return nn.Sequential(*layers)


def lenet(
    in_channels: int,
    side: int,
    classes: int,
    width: float = 1.0,
    base: tuple[int, int, int] = (4, 8, 16),
) -> nn.Module:
    """A LeNet in miniature (conv-pool-conv-pool-fc-fc) for 8x8 digits; ``width`` scales
    every layer as in Table 7.6."""
    c1, c2, h = (max(1, round(c * width)) for c in base)
    pooled = side // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, c1, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * pooled * pooled, h),
        nn.ReLU(),
        nn.Linear(h, classes),
    )


class FlatModel:
    """A module template seen as a function of one flat parameter vector."""

    def __init__(self, template: nn.Module) -> None:
        self.template = copy.deepcopy(template).eval()
        for p in self.template.parameters():
            p.requires_grad_(False)
        named = list(self.template.named_parameters())
        self.names = tuple(n for n, _ in named)
        self.shapes = tuple(tuple(p.shape) for _, p in named)
        self.sizes = tuple(math.prod(s) for s in self.shapes)
        self.num_params = sum(self.sizes)
        self._batched = vmap(self.logits_one, in_dims=(0, None))

    def __getstate__(self) -> dict:
        """Picklable for executors that leave the process (the vmapped function is rebuilt)."""
        state = dict(self.__dict__)
        del state["_batched"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._batched = vmap(self.logits_one, in_dims=(0, None))

    def unflatten(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """``(P,)`` -> the template's parameter dict (views, no copies)."""
        chunks = torch.split(theta, self.sizes, dim=-1)
        return {
            n: c.reshape(*theta.shape[:-1], *s)
            for n, c, s in zip(self.names, chunks, self.shapes, strict=True)
        }

    def flatten(self, module: nn.Module) -> torch.Tensor:
        """The parameters of a module with the template's layout as one vector."""
        return torch.cat([p.detach().reshape(-1) for p in module.parameters()])

    def logits_one(self, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """One model: ``(P,), (N, ...) -> (N, classes)``."""
        return functional_call(self.template, self.unflatten(theta), (x,))

    def logits(self, thetas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``(models, P), (N, ...) -> (models, N, classes)``, all models in one vectorised call."""
        return self._batched(thetas, x)

    def logits_loop(self, thetas: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`logits`, one model at a time (the benchmark's baseline)."""
        return torch.stack([self.logits_one(t, x) for t in thetas])

    def sample_uniform(self, count: int, bound: float, generator: torch.Generator) -> torch.Tensor:
        """``count`` vectors with entries i.i.d. uniform on ``[-bound, bound]`` (§7.4.1.1)."""
        u = torch.rand(count, self.num_params, generator=generator, device=generator.device)
        return (2.0 * u - 1.0) * bound

    def default_init(self, generator: torch.Generator) -> torch.Tensor:
        """PyTorch's default layer initialisation, ``U[-1/sqrt(fan_in), 1/sqrt(fan_in)]`` for
        weights and their biases, drawn from ``generator`` (the start of SGD and local search)."""
        parts, fan_in = [], 1
        for shape in self.shapes:
            if len(shape) > 1:
                fan_in = math.prod(shape[1:])
            u = torch.rand(math.prod(shape), generator=generator, device=generator.device)
            parts.append((2.0 * u - 1.0) / math.sqrt(fan_in))
        return torch.cat(parts)

    def to_module(self, theta: torch.Tensor) -> nn.Module:
        """A fresh module carrying parameter vector ``theta``."""
        module = copy.deepcopy(self.template)
        torch.nn.utils.vector_to_parameters(theta.detach().clone(), module.parameters())
        return module
