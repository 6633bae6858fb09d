"""Synthetic detection scenes: seeded, boxes tight around the drawn shapes, inside the image."""

import numpy as np

from threatlang.backends.smoothing.detection.scenes import SceneConfig, make_scenes


def test_same_seed_same_scenes_and_valid_boxes():
    a, b = make_scenes(20, seed=3), make_scenes(20, seed=3)
    assert np.array_equal(a.images, b.images) and not np.array_equal(
        a.images, make_scenes(20, seed=4).images
    )
    cfg = SceneConfig()
    assert a.images.shape == (20, 3, cfg.size, cfg.size) and a.images.dtype == np.float32
    assert 0 <= a.images.min() and a.images.max() <= 1
    for boxes, labels in zip(a.boxes, a.labels, strict=True):
        assert 1 <= len(boxes) <= cfg.max_objects and len(boxes) == len(labels)
        assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= cfg.size).all()
        assert (boxes[:, 2:] - boxes[:, :2] >= cfg.min_side - 1).all()
        assert set(labels.tolist()) <= {0, 1, 2}


def test_boxes_are_tight_around_a_uniform_shape():
    """Inside each box the shape's colour touches all four sides (a tight box)."""
    s = make_scenes(10, seed=0, cfg=SceneConfig(max_objects=1))
    for img, box in zip(s.images, s.boxes, strict=True):
        x1, y1, x2, y2 = box[0].astype(int)
        patch = img[:, y1:y2, x1:x2]
        colour = patch[:, (y2 - y1) // 2, (x2 - x1) // 2]  # the centre pixel is inside the shape
        hit = np.all(np.abs(patch - colour[:, None, None]) < 1e-6, axis=0)
        assert hit[0].any() and hit[-1].any() and hit[:, 0].any() and hit[:, -1].any()
