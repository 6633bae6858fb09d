"""The backend protocol and the explicit, ordered backend registry.

A backend declares what it supports (IR classes, which choices of each action, the modules it
needs, its builtin architectures) in a light module that imports no torch or solver, so
`threatlang check` and backend selection stay fast. `compile(spec)` returns a `Plan`: a pure
description that prints what it will compute; `plan.run(ctx)` does the work (heavy imports
happen there) and returns a `Summary`, appending per-example `Record`s to `ctx.records`.
Options an action carries beyond the language's fixed fields are bound to the backend's own
frozen attrs config class with `bind_options`, which reports unknown names and wrong types.
"""

from __future__ import annotations

import abc
import enum
import functools
import importlib
import importlib.util
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs

from threatlang.errors import Diagnostic
from threatlang.ir import Option, Spec
from threatlang.ir.validators import FieldError
from threatlang.report import Record, Status, Summary, Table

__all__ = [
    "Backend",
    "Plan",
    "Record",
    "REGISTRY",
    "RunContext",
    "Status",
    "Summary",
    "Table",
    "Unsupported",
    "backends",
    "bind_options",
    "architectures_for",
    "known_architectures",
    "missing_modules",
]

#: Backends in the order they are tried; each entry is a subpackage of `threatlang.backends`
#: whose light `__init__` defines `BACKEND`. Order matters: the first that accepts a spec runs it.
REGISTRY: tuple[str, ...] = ("ibp", "smoothing", "watermark", "mip", "advtrain", "landscape")


@attrs.frozen
class Unsupported:
    """A spec node a backend cannot handle, with the span to point at."""

    node: object
    reason: str

    def diagnostic(self, backend: str) -> Diagnostic:
        return Diagnostic(getattr(self.node, "span", None), f"backend {backend}: {self.reason}")


@attrs.frozen
class RunContext:
    """Everything a plan may touch while it runs; no hidden global state."""

    out_dir: Path
    records: Any  # threatlang.records.RecordLog
    progress: Any  # threatlang.progress.ProgressFactory
    console: Any  # rich.console.Console
    seed: int = 0
    device: str = "cpu"
    model: Any = None  # a user-supplied torch.nn.Module (Python API), else built from the spec
    data: Any = None  # user-supplied data (Python API), else loaded from the spec's DataRef
    allow_code: bool = False
    resume: bool = False
    executor: Any = attrs.field(factory=lambda: _in_process())  # threatlang.executors.Executor

    def artifact(self, name: str) -> Path:
        """A path inside the run directory for checkpoints and plots (resume reuses them)."""
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def _in_process():
    from threatlang.executors import InProcessExecutor

    return InProcessExecutor()


class Plan(abc.ABC):
    """A compiled spec: printable before it runs, run once with a `RunContext`."""

    spec: Spec

    @abc.abstractmethod
    def describe(self) -> str:
        """Human-readable steps the plan will perform (shown by `threatlang compile`)."""

    @abc.abstractmethod
    def run(self, ctx: RunContext) -> Summary:
        """Do the work, append a `Record` per work item to `ctx.records`, return the summary."""


class Backend(abc.ABC):
    """One way of turning a spec into results; declares its capabilities up front."""

    name: ClassVar[str]
    threats: ClassVar[frozenset[type]] = frozenset()
    properties: ClassVar[frozenset[type]] = frozenset()
    #: action class -> the choices (strategies, methods, kinds) this backend implements
    actions: ClassVar[Mapping[type, frozenset]] = {}
    required_modules: ClassVar[tuple[str, ...]] = ("torch",)
    #: builtin architecture name -> "module:function" (imported only when building a model)
    architectures: ClassVar[Mapping[str, str]] = {}

    def accepts(self, spec: Spec) -> tuple[Unsupported, ...]:
        """The nodes of `spec` this backend cannot run (empty: it can run the whole spec)."""
        out: list[Unsupported] = []
        if spec.threat is not None and type(spec.threat) not in self.threats:
            out.append(
                Unsupported(spec.threat, f"does not handle {type(spec.threat).__name__} threats")
            )
        if spec.require is not None and type(spec.require) not in self.properties:
            out.append(Unsupported(spec.require, f"cannot check {type(spec.require).__name__}"))
        for action in spec.actions:
            choice = _choice(action)
            if choice not in self.actions.get(type(action), frozenset()):
                what = f"{type(action).__name__.lower()} {getattr(choice, 'value', choice)}"
                out.append(Unsupported(action, f"does not implement `{what}`"))
        out.extend(self.check_options(spec))
        return tuple(out)

    def check_options(self, spec: Spec) -> list[Unsupported]:
        """Bind each action's options to the backend's config classes; override to add checks."""
        return []

    @abc.abstractmethod
    def compile(self, spec: Spec) -> Plan:
        """A `Plan` for a spec this backend accepts."""


def _choice(action) -> Any:
    for field in ("strategy", "method", "kind"):
        if hasattr(action, field):
            return getattr(action, field)
    return None


def missing_modules(backend: Backend) -> tuple[str, ...]:
    """Required modules that are not installed (found without importing them)."""
    return tuple(m for m in backend.required_modules if importlib.util.find_spec(m) is None)


@functools.cache
def backends() -> tuple[Backend, ...]:
    """The registered backends that exist in this installation, in registry order."""
    out = []
    for name in REGISTRY:
        try:
            module = importlib.import_module(f"threatlang.backends.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"threatlang.backends.{name}":
                continue  # not part of this installation
            raise
        backend = getattr(module, "BACKEND", None)
        if backend is not None:
            out.append(backend)
    return tuple(out)


def known_architectures() -> frozenset[str]:
    return frozenset(a for b in backends() for a in b.architectures)


def architectures_for(threat: object | None) -> frozenset[str]:
    """Builtin architectures of the installed backends that handle this kind of threat
    (`None` in a backend's `threats` means specs without a threat)."""
    kind = None if threat is None else type(threat)
    return frozenset(a for b in backends() if kind in b.threats for a in b.architectures)


# ------------------------------------------------------------------------- option binding
T = typing.TypeVar("T")


def bind_options(config_cls: type[T], options: tuple[Option, ...], owner: str) -> T:
    """Build `config_cls` (a frozen attrs class) from options; raises `OptionError` listing all
    problems (unknown names with the known ones, wrong types), each with the option's span."""
    fields = {f.name: f for f in attrs.fields(config_cls)}
    hints = typing.get_type_hints(config_cls)
    kwargs, problems = {}, []
    for opt in options:
        if opt.name not in fields:
            known = ", ".join(sorted(fields)) or "none"
            problems.append(
                Diagnostic(opt.span, f"unknown option '{opt.name}' for {owner}", f"one of {known}")
            )
            continue
        try:
            kwargs[opt.name] = _coerce(opt.value, hints[opt.name], opt.name)
        except FieldError as err:
            problems.append(Diagnostic(opt.span, f"option '{opt.name}' for {owner}: {err.message}"))
    if not problems:
        try:
            return config_cls(**kwargs)
        except FieldError as err:
            span = next((o.span for o in options if o.name == err.field), None)
            problems.append(Diagnostic(span, f"option '{err.field}' for {owner}: {err.message}"))
        except (TypeError, ValueError) as err:
            problems.append(Diagnostic(options[0].span if options else None, f"{owner}: {err}"))
    raise OptionError(problems)


class OptionError(Exception):
    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__("; ".join(d.message for d in diagnostics))


def option_problems(
    config_cls: type, options: tuple[Option, ...], owner: str, node: object
) -> list[Unsupported]:
    """`bind_options` as a list of `Unsupported` (for `Backend.check_options`)."""
    try:
        bind_options(config_cls, options, owner)
    except OptionError as err:
        return [
            Unsupported(
                _Spanned(d.span), d.message + (f" (expected {d.expected})" if d.expected else "")
            )
            for d in err.diagnostics
        ]
    return []


@attrs.frozen
class _Spanned:
    span: Any


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except FieldError:
                continue
        raise FieldError(name, f"expected {hint}, got {value!r}")
    if origin is tuple:
        seq = value if isinstance(value, tuple) else (value,)
        item = args[0] if args else Any
        return tuple(_coerce(v, item, name) for v in seq)
    if hint is Any:
        return value
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            raise FieldError(
                name, f"expected one of {', '.join(e.value for e in hint)}, got {value!r}"
            ) from None
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise FieldError(name, f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise FieldError(name, f"expected a whole number, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise FieldError(name, f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise FieldError(name, f"expected a string or name, got {value!r}")
    return value
