"""Per-layer and whole-network bound soundness: sampled outputs always lie inside the bounds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from threatlang.bounds import Box, LowerSlope, UnsupportedLayer, build_ops, propagate
from threatlang.bounds.engine import BoundConfig, BoundedNetwork, Method
from threatlang.bounds.inputs import BoxInput, L2Input, linf_ball

from .helpers import every_layer_net


def _samples(x: torch.Tensor, eps: float, n: int, gen: torch.Generator) -> torch.Tensor:
    noise = (torch.rand((n, *x.shape), generator=gen) * 2 - 1) * eps
    corners = torch.randint(0, 2, (n, *x.shape), generator=gen).float() * 2 - 1
    mixed = torch.where(torch.rand((n, *x.shape), generator=gen) < 0.5, noise, corners * eps)
    return (x + mixed).clamp(0, 1)


def _empirical_margins(model: nn.Module, xs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    n, b = xs.shape[:2]
    with torch.no_grad():
        z = model(xs.reshape(n * b, *xs.shape[2:])).reshape(n, b, -1)
    true = z.gather(2, y[None, :, None].expand(n, b, 1))
    return (true - z).amin(0)


@pytest.mark.parametrize(
    "layer",
    [
        nn.Linear(12, 5),
        nn.Conv2d(3, 4, 3, 2, 1),
        nn.Conv2d(3, 2, 2, 1, 0, groups=1),
        nn.AvgPool2d(2),
        nn.MaxPool2d(3, 2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
    ],
)
def test_layer_interval_contains_samples(layer: nn.Module) -> None:
    gen = torch.Generator().manual_seed(1)
    shape = (4, 12) if isinstance(layer, nn.Linear) else (4, 3, 6, 6)
    centre = torch.randn(shape, generator=gen)
    radius = torch.rand(shape, generator=gen)
    box = propagate(build_ops(layer, centre), Box(centre, radius))
    for _ in range(50):
        u = torch.rand(shape, generator=gen) * 2 - 1
        out = layer(centre + u * radius)
        assert bool(box.contains(out).all())


@pytest.mark.parametrize("method", list(Method))
@pytest.mark.parametrize("slope", list(LowerSlope))
def test_margin_bounds_below_sampled_margins(method: Method, slope: LowerSlope) -> None:
    model = every_layer_net()
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((4, 1, 8, 8), generator=gen)
    y = model(x).argmax(1)
    eps = 0.03
    bound = BoundedNetwork(model, x).margins(linf_ball(x, eps), y, BoundConfig(method, slope))
    emp = _empirical_margins(model, _samples(x, eps, 3000, gen), y)
    assert bool((bound <= emp + 1e-5).all())
    assert bool((bound.gather(1, y[:, None]) == 0).all())


def test_crown_zero_slope_never_looser_than_ibp() -> None:
    """With lower slope 0 every relaxed neuron concretises like IBP, and back-substitution
    through affine layers can only tighten, so CROWN >= IBP on every margin."""
    gen = torch.Generator().manual_seed(3)
    for seed in range(4):
        model = every_layer_net(seed)
        x = torch.rand((6, 1, 8, 8), generator=gen)
        y = model(x).argmax(1)
        net = BoundedNetwork(model, x)
        for eps in (0.01, 0.05, 0.2):
            ibp = net.margins(linf_ball(x, eps), y, BoundConfig(Method.IBP))
            for method in (Method.CROWN_IBP, Method.CROWN):
                crown = net.margins(linf_ball(x, eps), y, BoundConfig(method, LowerSlope.ZERO))
                assert bool((crown >= ibp - 1e-4).all()), (method, eps)


def test_crown_exact_on_linear_network() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Linear(8, 3))
    x = torch.rand(5, 1, 4, 4)
    y = model(x).argmax(1)
    eps = 0.1
    crown = BoundedNetwork(model, x).margins(
        BoxInput(Box(x, torch.full_like(x, eps))), y, BoundConfig(Method.CROWN)
    )
    w = model[2].weight @ model[1].weight
    for i in range(5):
        diff = w[y[i]] - w  # (3, 16): margin = diff . x + const, minimised at a corner
        exact = (diff @ x[i].flatten()) - eps * diff.abs().sum(1)
        exact = exact + (model[2].weight[y[i]] - model[2].weight) @ model[1].bias
        exact = exact + model[2].bias[y[i]] - model[2].bias
        assert torch.allclose(crown[i], exact, atol=1e-5)


def test_l2_ball_bounds_contain_samples() -> None:
    model = every_layer_net(1)
    gen = torch.Generator().manual_seed(5)
    x = torch.rand((3, 1, 8, 8), generator=gen)
    y = model(x).argmax(1)
    eps = 0.3
    d = torch.randn((2000, *x.shape), generator=gen)
    d = (
        d
        / d.flatten(2).norm(dim=2)[..., None, None, None]
        * eps
        * torch.rand(2000, 3, 1, 1, 1, generator=gen)
    )
    emp = _empirical_margins(model, x + d, y)
    for method in Method:
        bound = BoundedNetwork(model, x).margins(L2Input(x, eps), y, BoundConfig(method))
        assert bool((bound <= emp + 1e-5).all()), method


@pytest.mark.parametrize(
    "layer, why",
    [
        (nn.Softplus(), "no bound rule for aten.exp"),
        (nn.SiLU(), "the product of two computed tensors"),
        (nn.BatchNorm2d(1, track_running_stats=False), "the batch's own statistics"),
    ],
)
def test_unsupported_layers_are_named(layer: nn.Module, why: str) -> None:
    with pytest.raises(UnsupportedLayer, match=why):
        BoundedNetwork(nn.Sequential(layer, nn.Flatten(), nn.Linear(64, 2)), torch.rand(2, 1, 8, 8))
