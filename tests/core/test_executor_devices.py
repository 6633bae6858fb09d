"""Device placement through the Ray executor: GPU runs ask Ray for GPUs, CPU runs never do."""

from __future__ import annotations

import sys
import types

import pytest

from threatlang.errors import UsageError
from threatlang.executors import RayExecutor, make_executor


class FakeRay(types.SimpleNamespace):
    """Records the resources each remote function asks for; runs tasks inline."""

    def __init__(self, resources):
        super().__init__(asked=[], resources=resources)
        self.exceptions = types.SimpleNamespace(RayTaskError=RuntimeError)

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return self.resources

    def remote(self, **options):
        self.asked.append(options)

        def wrap(fn):
            return types.SimpleNamespace(remote=lambda *a: fn(*a))

        return wrap

    def put(self, value):
        return types.SimpleNamespace(hex=lambda: "ref", value=value)

    def get(self, ref):
        return ref.value if hasattr(ref, "value") else ref

    def cancel(self, ref):  # pragma: no cover - nothing pending in these tests
        pass


@pytest.fixture
def fake_ray(monkeypatch):
    def install(resources):
        ray = FakeRay(resources)
        monkeypatch.setitem(sys.modules, "ray", ray)
        return ray

    return install


def test_gpu_runs_request_a_gpu_per_task(fake_ray):
    ray = fake_ray({"CPU": 8, "GPU": 2})
    ex = make_executor("ray", device="cuda")
    assert list(ex.map(lambda x: x * 2, [1, 2, 3])) == [2, 4, 6]
    assert ray.asked[-1]["num_gpus"] == 1.0
    assert ex._slots(ray) == 2  # one task in flight per GPU


def test_cpu_runs_never_request_gpus(fake_ray):
    ray = fake_ray({"CPU": 4, "GPU": 1})
    ex = make_executor("ray", device="cpu")
    list(ex.map(lambda x: x, [1]))
    assert ray.asked[-1]["num_gpus"] == 0.0 and ex._slots(ray) == 4


def test_gpu_share_and_missing_gpus(fake_ray):
    ray = fake_ray({"CPU": 4, "GPU": 1})
    assert RayExecutor(device="cuda:0", gpus_per_item=0.25)._slots(ray) == 4
    with pytest.raises(UsageError, match="has no GPU"):
        RayExecutor(device="cuda")._slots(fake_ray({"CPU": 4}))
    with pytest.raises(UsageError, match="gpus per item"):
        RayExecutor(device="cuda", gpus_per_item=1.5)
