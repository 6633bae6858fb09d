"""Fixtures shared across backends' tests: a local Ray cluster and shrunken shipped specs."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def local_ray():
    """A local two-CPU Ray cluster for the module's tests (skipped when ray is not installed)."""
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    if started:
        ray.shutdown()


def _shrink(spec: Path, replacements: Mapping[str, str]) -> str:
    text = spec.read_text()
    for old, new in replacements.items():
        assert old in text, f"{spec.name} no longer says {old!r}: update the test's replacements"
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="session")
def shrunk_spec() -> Callable[[Path, Mapping[str, str]], str]:
    """`shrunk_spec(path, {old: new})`: a shipped spec's text made small enough for a test; it
    fails loudly when the spec no longer contains what the test replaces."""
    return _shrink


def register_plugin(root: Path, dist: str, entries: Mapping[str, str]) -> Path:
    """Register backends the way an installed distribution does: a `.dist-info` directory with
    an `entry_points.txt` in the `threatlang.backends` group, under `root` (put on sys.path)."""
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entries.items())
    (info / "entry_points.txt").write_text(f"[threatlang.backends]\n{lines}")
    return info


@pytest.fixture
def install_plugin(tmp_path, monkeypatch) -> Iterator[Callable[..., None]]:
    """`install_plugin(module_dir, {name: "module:BACKEND"})`: a test backend becomes an
    installed plugin (entry point + import path) for the test, with no core edit; the registry
    is refreshed before and after so nothing leaks into other tests."""
    from threatlang.backends import registry

    def install(module_dir: Path, entries: Mapping[str, str], dist: str = "test_plugin") -> None:
        register_plugin(tmp_path / "site", dist, entries)
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
        monkeypatch.syspath_prepend(str(module_dir))
        registry.refresh()

    yield install
    registry.refresh()
    for name in [m for m in sys.modules if m.startswith("toy_backend")]:
        sys.modules.pop(name, None)


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op torch thread per test: the tensors here are tiny and the machine is shared,
    so extra threads only contend (torch is imported only by tests that use it)."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
