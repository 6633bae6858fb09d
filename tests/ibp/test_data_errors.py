"""A patch threat on flat data names where the data came from and what to do."""

from __future__ import annotations

import numpy as np
import pytest

import threatlang
from threatlang.errors import UsageError

SPEC = """threatlang 1
spec flat {
  model mlp255
  data npz {
    path "PATH"
    test_limit 4
  }
  seed 0
  threat patch {
    shape square(2)
    locations all
    values [0, 1]
  }
  require label_unchanged
  train all_patch { epochs 1 }
  certify ibp
}
"""


def test_flat_npz_under_a_patch_threat_names_the_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "flat.npz"
    np.savez(
        path,
        x_train=rng.random((8, 64), dtype=np.float32),
        y_train=np.arange(8) % 2,
        x_test=rng.random((4, 64), dtype=np.float32),
        y_test=np.arange(4) % 2,
    )
    spec = threatlang.parse(SPEC.replace("PATH", str(path)))
    with pytest.raises(UsageError) as info:
        threatlang.run(spec, output=tmp_path / "run", quiet=True)
    message = str(info.value)
    assert str(path) in message and "(4, 64)" in message and "(N, C, H, W)" in message
    assert "\n" not in message
