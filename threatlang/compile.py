"""Backend selection: the first registered backend that accepts the whole spec compiles it.

When none does, the error names the spec lines the closest backend could not handle, so the
user sees a capability error at the right place instead of a stub that pretends to run.
"""

from __future__ import annotations

import warnings

from .errors import CapabilityError, Diagnostic, UsageError
from .ir import Spec


def capable_backend(spec: Spec):
    """The first backend that accepts every node and option of `spec` (no module check, no
    heavy imports: `threatlang check` uses it), or `CapabilityError` from the closest one."""
    from .backends.registry import backends

    candidates = []
    for backend in backends():
        unsupported = _accepts(backend, spec)
        if unsupported is None:
            continue
        if not unsupported:
            return backend
        candidates.append((len(unsupported), backend, unsupported))
    if not candidates:
        raise CapabilityError([Diagnostic(spec.span, "no backend is installed")])
    candidates.sort(key=lambda c: c[0])
    _, best, unsupported = candidates[0]
    raise CapabilityError([u.diagnostic(best.name) for u in unsupported])


def _accepts(backend, spec: Spec):
    """`backend.accepts(spec)`, or None when the plugin raises: one broken plugin must not
    break `check` for every spec. It is skipped with a warning naming it (the same text for
    the same fault, so Python's warning filter shows it once)."""
    try:
        return tuple(backend.accepts(spec))
    except Exception as err:  # a plugin's bug, not the user's spec
        name = getattr(backend, "name", type(backend).__name__)
        warnings.warn(
            f"backend plugin '{name}' is skipped: checking a spec raised "
            f"{type(err).__name__}: {err} (in its accepts/refine); fix or uninstall the "
            "distribution that registers it.",
            RuntimeWarning,
            stacklevel=3,
        )
        return None


def select_backend(spec: Spec):
    """The backend that will run `spec` (installed modules included), or a clear error."""
    from .backends.registry import missing_modules

    backend = capable_backend(spec)
    missing = missing_modules(backend)
    if missing:
        raise UsageError(
            f"spec '{spec.name}' needs backend {backend.name}, which needs "
            f"{', '.join(missing)}; install it (e.g. pip install -e '.[{_extra(missing)}]')."
        )
    return backend


def compile_spec(spec: Spec):
    """(backend, plan) for `spec`."""
    backend = select_backend(spec)
    return backend, backend.compile(spec)


def _extra(missing) -> str:
    if any(m in ("gurobipy", "highspy", "pyscipopt") for m in missing):
        return "mip"
    if "ray" in missing:
        return "dist"
    if any(m.startswith("onnx") for m in missing):
        return "onnx"
    return "dev"
