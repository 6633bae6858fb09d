import pytest

from threatlang.backends.advtrain.schedule import RadiusSchedule


def test_linear_decay_follows_equation_6_5():
    r = RadiusSchedule(start=8.0, end=0.8, epoch_start=30, epoch_end=300)
    assert r(0) == r(30) == 8.0
    assert r(165) == pytest.approx(8.0 + (0.8 - 8.0) * 135 / 270)
    assert r(300) == pytest.approx(0.8)
    assert r(400) == pytest.approx(0.8)  # held at the end radius


def test_constant_and_scaled_chapter_schedule():
    assert RadiusSchedule.constant(0.1)(123) == 0.1
    r = RadiusSchedule.decay(1.0, epochs=10)
    assert (r.epoch_start, r.epoch_end, r.end) == (1, 10, pytest.approx(0.1))
    assert r(1) == 1.0 and r(10) == pytest.approx(0.1)


def test_rejects_an_empty_window():
    with pytest.raises(ValueError):
        RadiusSchedule(start=1.0, end=0.1, epoch_start=5, epoch_end=5)
