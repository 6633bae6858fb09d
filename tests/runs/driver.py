"""`threatlang` with the toy backend installed as a plugin, for subprocess tests."""

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import torch  # noqa: E402
import toy_backend  # noqa: E402
from conftest import register_plugin  # noqa: E402

from threatlang.cli import main  # noqa: E402

torch.set_num_threads(1)
if "--executor" in sys.argv:  # Ray workers cannot import this helper by name: ship it by value
    import ray

    ray.cloudpickle.register_pickle_by_value(toy_backend)
site = Path(tempfile.mkdtemp(prefix="toy-plugin-"))
register_plugin(site, "toy_plugin", {"toy": "toy_backend:BACKEND"})
sys.path.insert(0, str(site))
sys.exit(main(sys.argv[1:]))
