"""Fixtures for interop tests: a backend that owns the `tiny` test architecture."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.fixture
def archs(monkeypatch):
    """tests/interop/archs.py importable, and `tiny` a builtin architecture of a test backend."""
    monkeypatch.syspath_prepend(str(HERE))
    import archs

    from threatlang.backends import base, registry
    from threatlang.ir import Certify, LabelUnchanged, Train

    class Owner(base.Backend):
        name = "owner"
        capabilities = base.Capabilities(
            families={"input ball", "patch"},
            properties={LabelUnchanged},
            offers=[base.Offer(Train, "standard"), base.Offer(Certify, "ibp")],
            architectures={"tiny": "archs:tiny"},
        )

        def compile(self, spec):  # pragma: no cover - not run
            raise AssertionError

    monkeypatch.setattr(registry, "backends", lambda: (Owner(),))
    return archs
