"""Fixtures for run tests: the toy certifying backend, and one local Ray cluster per module."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def toy(install_plugin):
    """The toy backend module, installed as a plugin through its entry point; torch on one
    thread (as in a Ray worker: the same arithmetic, and no spinning threads on 2 cores)."""
    import torch

    install_plugin(HERE, {"toy": "toy_backend:BACKEND"})
    import toy_backend

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield toy_backend
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def local_ray():
    """A local two-worker Ray cluster, shut down after the module's tests."""
    ray = pytest.importorskip("ray")
    sys.path.insert(0, str(HERE))
    import toy_backend

    # the workers cannot import the test helper by name: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(toy_backend)
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    if started:
        ray.shutdown()
    sys.path.remove(str(HERE))
