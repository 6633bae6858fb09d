import numpy as np
import pytest

from threatlang.backends.watermark.config import TriggerKind
from threatlang.backends.watermark.triggers import TriggerConfig, make_trigger_set, render_text_mask


def test_text_mask_draws_glyphs_inside_the_box():
    mask = render_text_mask("WM", 16, 32)
    assert mask.shape == (16, 32)
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    assert 0.1 < mask.mean() < 0.7  # ink, but not a filled box
    assert not np.allclose(mask, render_text_mask("IO", 16, 32))


@pytest.mark.parametrize("kind", list(TriggerKind))
def test_trigger_sets_have_one_label_and_valid_pixels(digits, kind):
    x, y = digits
    ts = make_trigger_set(TriggerConfig(kind=kind, count=20, target_label=3), x, y)
    assert ts.x.shape == (20, 1, 8, 8) and ts.x.dtype == np.float32
    assert set(ts.y.tolist()) == {3}
    assert ts.x.min() >= 0.0 and ts.x.max() <= 1.0
    again = make_trigger_set(TriggerConfig(kind=kind, count=20, target_label=3), x, y)
    np.testing.assert_array_equal(ts.x, again.x)  # seeded, reproducible
    other = make_trigger_set(TriggerConfig(kind=kind, count=20, target_label=3, seed=1), x, y)
    assert not np.array_equal(ts.x, other.x)


def test_text_and_noise_triggers_come_from_images_of_other_classes(digits):
    x, y = digits
    for kind in (TriggerKind.TEXT, TriggerKind.NOISE):
        ts = make_trigger_set(TriggerConfig(kind=kind, count=30, target_label=0), x, y)
        # the untouched bottom rows of text triggers match a source image of a non-target class
        if kind is TriggerKind.TEXT:
            bottom = ts.x[:, :, 4:]
            for img in bottom:
                match = np.flatnonzero(np.all(np.isclose(x[:, :, 4:], img), axis=(1, 2, 3)))
                assert len(match) and np.all(y[match] != 0)


def test_noise_trigger_is_one_prespecified_pattern(digits):
    x, y = digits
    ts = make_trigger_set(TriggerConfig(kind=TriggerKind.NOISE, count=40, noise_std=0.1), x, y)
    # wherever nothing was clipped, trigger - source is the same pattern for every image
    diffs = []
    for img in ts.x:
        best = np.argmin(np.abs(x - img).reshape(len(x), -1).sum(1))
        diffs.append(img - x[best])
    diffs = np.stack(diffs)
    inside = np.all((ts.x > 0) & (ts.x < 1), axis=0)
    assert inside.sum() > 10
    assert np.allclose(diffs[:, inside], diffs[0, inside], atol=1e-5)


def test_unrelated_triggers_come_from_another_domain(digits):
    x, y = digits
    gray = make_trigger_set(TriggerConfig(kind=TriggerKind.UNRELATED, count=10), x, y)
    assert not any(np.isclose(x, img, atol=1e-3).all(axis=(1, 2, 3)).any() for img in gray.x)
    colour = np.zeros((5, 3, 32, 32), np.float32)
    ts = make_trigger_set(TriggerConfig(kind=TriggerKind.UNRELATED, count=10), colour, np.arange(5))
    assert ts.x.shape == (10, 3, 32, 32)
    assert np.allclose(ts.x[:, 0], ts.x[:, 1])  # grey digits copied to every channel


def test_non_image_data_is_refused_clearly():
    with pytest.raises(ValueError, match="images"):
        make_trigger_set(TriggerConfig(), np.zeros((4, 10), np.float32), np.arange(4))
