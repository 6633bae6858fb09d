"""`threatlang` with the toy backend as the only backend, for subprocess tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
import toy_backend  # noqa: E402

from threatlang.backends import base  # noqa: E402
from threatlang.cli import main  # noqa: E402

torch.set_num_threads(1)
if "--executor" in sys.argv:  # Ray workers cannot import this helper by name: ship it by value
    import ray

    ray.cloudpickle.register_pickle_by_value(toy_backend)
base.backends = lambda: (toy_backend.ToyBackend(),)
sys.exit(main(sys.argv[1:]))
