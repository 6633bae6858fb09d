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


def _smooth(c=3):
    """Natural-image-like input: random pixels blurred (glass blur's local swaps move little)."""
    x = torch.nn.functional.avg_pool2d(_images(c), 5, stride=1, padding=2, count_include_pad=False)
    return (x - x.min()) / (x.max() - x.min()) * 0.8 + 0.1


# the reference's elastic severities trade the affine jitter (largest at severity 1) against
# the displacement field: its pixel change is not monotone in the severity
MONOTONE = [k for k in Corruption if k is not Corruption.ELASTIC_TRANSFORM]


@pytest.mark.parametrize("kind", MONOTONE)
def test_higher_severity_changes_the_image_more(kind):
    x = _smooth(3)
    change = [
        (corrupt(x, kind, s, torch.Generator().manual_seed(2)) - x).abs().mean() for s in (1, 5)
    ]
    assert change[1] > change[0]


def test_the_suite_is_imagenet_c_fifteen_plus_extras_and_the_names_match():
    from threatlang.backends.advtrain.config import BENCHMARK_NAMES, CORRUPTION_NAMES
    from threatlang.backends.advtrain.corruptions import BENCHMARK

    assert len(BENCHMARK) == 15 and tuple(k.value for k in BENCHMARK) == BENCHMARK_NAMES
    assert set(CORRUPTION_NAMES) == {k.value for k in Corruption}
    assert CorruptionSuite().corruptions == BENCHMARK


def test_pixelate_is_pil_box_filtering_down_and_up():
    Image = pytest.importorskip("PIL.Image")
    import numpy as np

    from threatlang.backends.advtrain.digital import PIXELATE

    x = _images(1)[:1]
    img = Image.fromarray(x[0, 0].numpy(), mode="F")
    for severity, c in enumerate(PIXELATE, start=1):
        side = int(16 * c)
        ref = np.asarray(img.resize((side, side), Image.BOX).resize((16, 16), Image.BOX))
        ours = corrupt(x, Corruption.PIXELATE, severity, torch.Generator())[0, 0].numpy()
        assert np.abs(ours - np.clip(ref, 0, 1)).max() < 1e-5


def test_jpeg_fallback_follows_pillow():
    pytest.importorskip("PIL")
    import numpy as np

    from threatlang.backends.advtrain.digital import jpeg_dct, jpeg_pil

    img = np.round(_smooth(3)[0].numpy() * 255).astype(np.float64)
    for quality in (80, 40):
        pil, ours = jpeg_pil(img, quality), jpeg_dct(img, quality)
        # the codec's error is several levels; ours stays within ~half of it of Pillow's result
        assert np.abs(pil - img).mean() > 1.0
        assert np.abs(ours - pil).mean() < 0.6 * np.abs(pil - img).mean() + 1.0
    grey = img[:1]
    assert np.abs(jpeg_dct(grey, 40) - jpeg_pil(grey, 40)).mean() < 2.0


def test_motion_blur_is_a_one_sided_gaussian_along_the_angle():
    import numpy as np

    from threatlang.backends.advtrain.blurs import motion_blur_images, motion_kernel

    k = motion_kernel(6, 2.0)
    assert len(k) == 13 and abs(k.sum() - 1) < 1e-12 and np.all(np.diff(k) < 0)
    img = np.zeros((1, 1, 9, 15))
    img[0, 0, 4, 7] = 1.0
    out = motion_blur_images(img, 3, 1.0, np.array([0.0]))[0, 0]
    # angle 0: the dot is smeared along its row only, weight decreasing away from it
    assert np.allclose(out.sum(), 1.0) and np.allclose(out[[0, 1, 2, 3, 5, 6, 7, 8]].sum(), 0)
    row = out[4]
    assert row[7] == row.max() and row[7] > row[6] > row[5] and row[8:].sum() == 0


def test_frost_is_a_fixed_synthetic_texture_blended_as_the_reference():
    from threatlang.backends.advtrain.weather import FROST, frost_textures

    a, b = frost_textures(48), frost_textures(48)
    assert a is b and len(a) == 5 and all(t.shape == (3, 48, 48) for t in a)
    x = torch.zeros(2, 3, 16, 16)
    out = corrupt(x, Corruption.FROST, 5, torch.Generator().manual_seed(0))
    assert 0 < out.max() <= FROST[4][1] + 1e-6  # black image: only c1 * frost remains


def test_contrast_and_brightness_do_what_they_say():
    x = _images(3) * 0.5
    assert corrupt(x, Corruption.CONTRAST, 5, torch.Generator()).std() < x.std()
    bright = corrupt(x, Corruption.BRIGHTNESS, 5, torch.Generator())
    assert torch.all(bright.amax(1) >= x.amax(1))


def test_reference_model_is_trained_once_deterministically_and_cached(tmp_path):
    from threatlang.backends.advtrain.reference import reference_errors

    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, 8, 8, generator=g)
    y = (x.mean((1, 2, 3)) > 0.5).long()
    suite = CorruptionSuite(corruptions=(Corruption.GAUSSIAN_NOISE,), severities=(1, 5))
    first = reference_errors((x, y), (x, y), 2, suite, str(tmp_path / "a"))
    again = reference_errors((x, y), (x, y), 2, suite, str(tmp_path / "a"))
    elsewhere = reference_errors((x, y), (x, y), 2, suite, str(tmp_path / "b"))
    assert first.trained and not again.trained and elsewhere.trained
    assert first.errors == again.errors == elsewhere.errors  # same weights from a fresh cache
    other = reference_errors((x, 1 - y), (x, 1 - y), 2, suite, str(tmp_path / "a"))
    assert other.key != first.key  # keyed by the data


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
