import copy

import torch
import torch.nn.functional as F

from threatlang.backends.watermark.config import NoiseStrategy
from threatlang.backends.watermark.models import small_resnet
from threatlang.backends.watermark.param_noise import (
    accuracy_under_noise,
    detached_params,
    l2_distance,
    noisy_logits,
    param_count,
    pick_strategy,
    plain_accuracy,
    sample_noise,
)

from .conftest import tiny_mlp


def _data(n=16, shape=(1, 8, 8)):
    g = torch.Generator().manual_seed(0)
    return torch.rand((n, *shape), generator=g), torch.randint(0, 10, (n,), generator=g)


def test_noise_draws_have_the_requested_sigma_per_draw():
    params = {"w": torch.zeros(20000)}
    sigmas = torch.tensor([0.0, 0.1, 1.0])
    noise = sample_noise(params, sigmas, torch.Generator().manual_seed(0))["w"]
    assert noise.shape == (3, 20000)
    assert torch.all(noise[0] == 0)
    assert abs(float(noise[1].std()) - 0.1) < 0.005 and abs(float(noise[2].std()) - 1.0) < 0.05


def test_evaluation_never_touches_the_module():
    model = small_resnet((1, 8, 8), 10).eval()
    before = copy.deepcopy(model.state_dict())
    x, y = _data()
    for strategy in (NoiseStrategy.VMAP, NoiseStrategy.LOOP):
        accuracy_under_noise(
            model, detached_params(model), x, y, 0.5, 8, torch.Generator().manual_seed(0),
            chunk=4, strategy=strategy,
        )  # fmt: skip
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_vmap_and_loop_agree_and_zero_noise_is_the_plain_model():
    model = small_resnet((1, 8, 8), 10).eval()
    params = detached_params(model)
    x, y = _data(32)
    runs = [
        accuracy_under_noise(model, params, x, y, 0.3, 12, torch.Generator().manual_seed(5),
                             chunk=5, strategy=s)
        for s in (NoiseStrategy.VMAP, NoiseStrategy.LOOP)
    ]  # fmt: skip
    assert torch.allclose(runs[0], runs[1])
    zero = accuracy_under_noise(model, params, x, y, 0.0, 3, torch.Generator().manual_seed(0))
    assert torch.allclose(zero, torch.full((3,), plain_accuracy(model, params, x, y)))


def test_noisy_logits_match_a_model_with_the_noise_added():
    model = tiny_mlp().eval()
    params = detached_params(model)
    noise = sample_noise(params, torch.tensor([0.2, 0.7]), torch.Generator().manual_seed(1))
    x, _ = _data(4)
    got = noisy_logits(model, params, noise, x, NoiseStrategy.VMAP)
    for i in range(2):
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for name, p in moved.named_parameters():
                p.add_(noise[name][i])
        assert torch.allclose(got[i], moved(x), atol=1e-5)


def test_gradient_through_noise_is_the_gradient_at_the_noisy_point():
    """Algorithm 2 needs ∇θ l(θ + G); both strategies must give it."""
    model = tiny_mlp()
    live = dict(model.named_parameters())
    noise = sample_noise(
        detached_params(model), torch.tensor([0.3]), torch.Generator().manual_seed(2)
    )
    x, y = _data(8)
    grads = []
    for strategy in (NoiseStrategy.VMAP, NoiseStrategy.LOOP):
        loss = F.cross_entropy(noisy_logits(model, live, noise, x, strategy)[0], y)
        grads.append(torch.autograd.grad(loss, list(live.values())))
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in moved.named_parameters():
            p.add_(noise[name][0])
    ref = torch.autograd.grad(F.cross_entropy(moved(x), y), list(moved.parameters()))
    for g_vmap, g_loop, g_ref in zip(*grads, ref, strict=True):
        assert torch.allclose(g_vmap, g_ref, atol=1e-5) and torch.allclose(g_loop, g_ref, atol=1e-5)


def test_distance_and_count_and_strategy_choice():
    a = {"w": torch.zeros(3, 4), "b": torch.zeros(2)}
    b = {"w": torch.full((3, 4), 1.0), "b": torch.zeros(2)}
    assert abs(l2_distance(a, b) - 12**0.5) < 1e-6
    assert param_count(a) == 14
    model = tiny_mlp().eval()
    x, _ = _data(8)
    assert pick_strategy(model, detached_params(model), x, 4) in (
        NoiseStrategy.VMAP, NoiseStrategy.LOOP,
    )  # fmt: skip
    bn = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2)).train()
    assert pick_strategy(bn, detached_params(bn), x, 4) is NoiseStrategy.LOOP
