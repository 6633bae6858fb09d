"""Fixtures shared across backends' tests: a local Ray cluster and shrunken shipped specs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
