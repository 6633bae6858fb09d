import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from threatlang.backends.advtrain import pyramid as pyr


@settings(max_examples=40, deadline=None)
@given(
    scales=st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True),
    h=st.integers(1, 20),
    w=st.integers(1, 20),
    c=st.integers(1, 3),
    radius=st.floats(0.0, 0.1),
    seed=st.integers(0, 2**16),
)
def test_each_level_is_tiled_and_clipped_to_the_radius(scales, h, w, c, radius, seed):
    mults = tuple(float(len(scales) - i) for i in range(len(scales)))
    cfg = pyr.PyramidConfig(scales=tuple(scales), multipliers=mults)
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn((2, *pyr.level_shape(s, (c, h, w))), generator=g) for s in scales]
    total = torch.zeros(2, c, h, w)
    for p, s, m in zip(params, scales, mults, strict=True):
        level = pyr.compose([p], pyr.PyramidConfig(scales=(s,), multipliers=(m,)), radius, h, w)
        assert level.shape == (2, c, h, w)
        assert level.abs().max() <= m * radius + 1e-7
        # every s x s tile holds one value: the value at the tile's top-left corner
        corner = level[..., ::s, ::s]
        assert torch.equal(level, pyr.tile(corner, s, h, w))
        assert corner.shape[-2:] == (math.ceil(h / s), math.ceil(w / s))
        total = total + level
    delta = pyr.compose(params, cfg, radius, h, w)
    torch.testing.assert_close(delta, total)
    assert delta.abs().max() <= cfg.max_linf(radius) + 1e-6
    x = torch.rand(2, c, h, w, generator=g)
    out = pyr.perturb(x, delta, cfg)
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_compose_is_differentiable_and_sums_gradient_over_a_tile():
    cfg = pyr.PyramidConfig(scales=(4,), multipliers=(3.0,))
    p = torch.zeros(1, 1, 2, 2, requires_grad=True)
    pyr.compose([p], cfg, 0.1, 8, 8).sum().backward()
    assert torch.equal(p.grad, torch.full((1, 1, 2, 2), 3.0 * 16))


def test_sign_step_moves_by_exactly_the_step_and_stays_in_the_ball():
    p = [torch.tensor([[0.0, 0.05, -0.05, 0.099]])]
    g = [torch.tensor([[1.0, -2.0, 0.0, 5.0]])]
    pyr.sign_step_(p, g, 0.01, 0.1)
    torch.testing.assert_close(p[0], torch.tensor([[0.01, 0.04, -0.05, 0.1]]))


def test_universal_levels_broadcast_over_the_batch():
    cfg = pyr.PyramidConfig()
    levels = pyr.zeros(cfg, (1, 32, 32), 1)
    assert [tuple(t.shape) for t in levels] == [(1, 1, 2, 2), (1, 1, 8, 8), (1, 1, 32, 32)]
    delta = pyr.compose(levels, cfg, 8 / 255, 32, 32)
    assert pyr.perturb(torch.rand(5, 1, 32, 32), delta, cfg).shape == (5, 1, 32, 32)


def test_config_rejects_mismatched_multipliers_and_bad_scales():
    with pytest.raises(ValueError, match="multipliers"):
        pyr.PyramidConfig(scales=(4, 1), multipliers=(1.0,))
    with pytest.raises(ValueError, match="positive"):
        pyr.PyramidConfig(scales=(0,), multipliers=(1.0,))
    assert pyr.flat_config().scales == (1,)
