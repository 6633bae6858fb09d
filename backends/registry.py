"""Backend discovery through the `threatlang.backends` entry-point group.

Every backend, the shipped ones included, is a plugin: a distribution registers
`NAME = "package.module:BACKEND"` under `[project.entry-points."threatlang.backends"]`, and the
object it names declares its `Capabilities`. Loading an entry point imports only the backend's
light module (no torch), so `threatlang check` stays fast. The order of selection is each
backend's declared `priority`, then its name.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import warnings
from collections.abc import Mapping

from threatlang.errors import UsageError

GROUP = "threatlang.backends"


@functools.cache
def backends() -> tuple:
    """The installed backends, in selection order. `refresh()` forgets the cached list (a test
    that installs a plugin at run time calls it)."""
    found = {}
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name in found:
            continue  # the first distribution on sys.path wins, as for imports
        try:
            backend = ep.load()
        except Exception as err:  # one broken plugin must not take the others down
            _skip(ep, f"cannot be imported ({type(err).__name__}: {err})")
            continue
        if getattr(backend, "name", None) != ep.name:
            _skip(ep, f"names itself {getattr(backend, 'name', None)!r}")
            continue
        if not hasattr(backend, "capabilities"):
            _skip(ep, "declares no `capabilities`")
            continue
        found[ep.name] = backend
    return tuple(sorted(found.values(), key=lambda b: (b.capabilities.priority, b.name)))


def _skip(ep, why: str) -> None:
    warnings.warn(
        f"backend plugin '{ep.name}' ({ep.value}) is skipped: it {why}; fix or uninstall "
        "the distribution that registers it.",
        RuntimeWarning,
        stacklevel=3,
    )


def refresh() -> None:
    backends.cache_clear()


def backend_named(name: str):
    for b in backends():
        if b.name == name:
            return b
    known = ", ".join(b.name for b in backends()) or "none"
    raise UsageError(f"no backend named '{name}' is installed (installed: {known}).")


def missing_modules(backend) -> tuple[str, ...]:
    """Required modules that are not installed (found without importing them)."""
    return tuple(
        m for m in backend.capabilities.required_modules if importlib.util.find_spec(m) is None
    )


def known_architectures() -> frozenset[str]:
    return frozenset(a for b in backends() for a in b.capabilities.architectures)


def architecture_owners() -> Mapping[str, str]:
    """Builtin architecture name -> "module:function", over every installed backend."""
    out: dict[str, str] = {}
    for b in reversed(backends()):
        out.update(b.capabilities.architectures)
    return out


def architectures_for(family: str | None) -> frozenset[str]:
    """Builtin architectures of the installed backends that handle this threat family."""
    return frozenset(
        a
        for b in backends()
        if family in b.capabilities.families
        for a in b.capabilities.architectures
    )


__all__ = [
    "GROUP",
    "architecture_owners",
    "architectures_for",
    "backend_named",
    "backends",
    "known_architectures",
    "missing_modules",
    "refresh",
]
