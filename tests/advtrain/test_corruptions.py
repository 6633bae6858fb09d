import math

import pytest
import torch

from threatlang.backends.advtrain.corruptions import Corruption, corrupt
from threatlang.backends.advtrain.evaluate import (
    CorruptionSuite,
    corruption_accuracy,
    corruption_errors,
    mean_corruption_error,
)

from .helpers import linear


def _images(c=3):
    return torch.rand(4, c, 16, 16, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("kind", list(Corruption))
@pytest.mark.parametrize("channels", [1, 3])
def test_every_corruption_keeps_shape_and_range_and_is_seeded(kind, channels):
    x = _images(channels)
    a = corrupt(x, kind, 3, torch.Generator().manual_seed(1))
    b = corrupt(x, kind, 3, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, b)
    assert not torch.equal(a, x)


@pytest.mark.parametrize("kind", list(Corruption))
def test_higher_severity_changes_the_image_more(kind):
    x = _images(3) * 0.8 + 0.1
    change = [
        (corrupt(x, kind, s, torch.Generator().manual_seed(2)) - x).abs().mean() for s in (1, 5)
    ]
    assert change[1] > change[0]


def test_contrast_and_brightness_do_what_they_say():
    x = _images(3) * 0.5
    assert corrupt(x, Corruption.CONTRAST, 5, torch.Generator()).std() < x.std()
    bright = corrupt(x, Corruption.BRIGHTNESS, 5, torch.Generator())
    assert torch.all(bright.amax(1) >= x.amax(1))


def test_baseline_mce_is_one_and_a_perfect_model_scores_zero():
    x = torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model = linear(shape=(1, 8, 8), classes=3)
    y = torch.randint(0, 3, (10,), generator=torch.Generator().manual_seed(1))
    suite = CorruptionSuite(
        corruptions=(Corruption.GAUSSIAN_NOISE, Corruption.CONTRAST), severities=(1, 5)
    )
    errs = corruption_errors(model, x, y, suite)
    assert set(errs) == {(c, s) for c in suite.corruptions for s in (1, 5)}
    assert errs == corruption_errors(model, x, y, suite)  # same corrupted images every time
    assert mean_corruption_error(errs, errs) == pytest.approx(1.0)
    perfect = {k: 0.0 for k in errs}
    assert mean_corruption_error(perfect, errs) == 0.0
    assert corruption_accuracy(perfect) == 1.0
    assert math.isnan(mean_corruption_error(errs, perfect))
