"""`threatlang` with the toy backend as the only backend, for subprocess tests."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
import toy_backend  # noqa: E402

from threatlang.backends import base  # noqa: E402
from threatlang.cli import main  # noqa: E402

torch.set_num_threads(1)
base.backends = lambda: (toy_backend.ToyBackend(),)
sys.exit(main(sys.argv[1:]))
