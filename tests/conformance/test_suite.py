"""The shipped conformance suite (`threatlang.testing.suite`) over the shipped backends' cases
(`cases.py`): each check is one test parametrised over the cases, so a backend that breaks a
promise fails under its own name. An out-of-tree backend runs the same checks the same way
(tests/plugins/test_outside_conformance.py does, for a test plugin)."""

from __future__ import annotations

from threatlang.backends.registry import backends
from threatlang.testing import registered
from threatlang.testing.suite import *  # noqa: F403 - the checks, collected here

from . import cases  # noqa: F401 - registers the shipped backends' cases


def test_every_certifying_backend_has_a_case() -> None:
    """A shipped backend that claims certificates joins the suite (`cases.py`)."""
    claimed = {b.name for b in backends() if b.capabilities.certifies}
    assert claimed <= {c.backend for c in registered()}


def test_the_shipped_cases_are_registered() -> None:
    assert {c.id for c in cases.CASES} <= {c.id for c in registered()}
