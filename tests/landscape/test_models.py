import math

import torch

from threatlang.backends.landscape.architectures import lenet_tiny, mlp_small
from threatlang.backends.landscape.models import FlatModel


def test_vectorised_logits_equal_each_module_forward():
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    for module in (
        mlp_small((1, 8, 8), 2, hidden=7),
        lenet_tiny((1, 8, 8), 3, width=0.5),
        mlp_small((1, 8, 8), 2, hidden=0),
    ):
        fm = FlatModel(module)
        thetas = fm.sample_uniform(4, 1.0, torch.Generator().manual_seed(1))
        batched = fm.logits(thetas, x)
        for theta, logits in zip(thetas, batched, strict=True):
            with torch.no_grad():
                expected = fm.to_module(theta)(x)
            assert torch.allclose(logits, expected, atol=1e-5)
        assert torch.allclose(fm.logits_loop(thetas, x), batched, atol=1e-5)
        assert torch.equal(fm.flatten(fm.to_module(thetas[0])), thetas[0])


def test_samplers_respect_bounds_and_seed():
    fm = FlatModel(mlp_small((1, 8, 8), 2, hidden=16))
    a = fm.sample_uniform(3, 0.5, torch.Generator().manual_seed(2))
    assert a.shape == (3, fm.num_params) and float(a.abs().max()) <= 0.5
    assert torch.equal(a, fm.sample_uniform(3, 0.5, torch.Generator().manual_seed(2)))
    init = fm.default_init(torch.Generator().manual_seed(0))
    first_layer = fm.unflatten(init)["1.weight"]
    assert float(first_layer.abs().max()) <= 1 / math.sqrt(64)
    assert torch.equal(init, fm.default_init(torch.Generator().manual_seed(0)))
    assert mlp_small((1, 8, 8), 2, hidden=0)[1].in_features == 64  # the linear model
