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
import typing
from pathlib import Path
from typing import Any, ClassVar

import attrs

from threatlang.errors import Diagnostic
from threatlang.ir import Option, Spec
from threatlang.ir.refs import CORE_SOURCES
from threatlang.ir.threats import threat_family
from threatlang.ir.validators import FieldError
from threatlang.report import Record, Status, Summary, Table

from .capabilities import Capabilities, DataOffer, Offer, choice_of, verb_of
from .registry import (
    architectures_for,
    backend_named,
    backends,
    known_architectures,
    missing_modules,
)

__all__ = [
    "Backend",
    "Capabilities",
    "DataOffer",
    "NoOptions",
    "Offer",
    "Plan",
    "Record",
    "backend_named",
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


@attrs.frozen
class Unsupported:
    """A spec node a backend cannot handle, with the span to point at."""

    node: object
    reason: str

    def diagnostic(self, backend: str) -> Diagnostic:
        return Diagnostic(getattr(self.node, "span", None), f"backend {backend}: {self.reason}")


@attrs.frozen
class RunContext:
    """Everything a plan may touch while it runs; no hidden global state. The methods are the
    shared run scaffolding (`threatlang.runtime`): backends keep only their science."""

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
    timings: Any = attrs.field(default=None)  # threatlang.runtime.StageTimings

    def __attrs_post_init__(self) -> None:
        if self.timings is None:
            from threatlang.runtime import StageTimings

            object.__setattr__(self, "timings", StageTimings.open(self.out_dir, self.resume))

    def artifact(self, name: str) -> Path:
        """A path inside the run directory for checkpoints and plots (resume reuses them)."""
        path = self.out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def splits(self, spec: Spec):
        """The run's `DataSplits`: the caller's data if any, else the spec's `data`."""
        from threatlang.runtime import splits_from

        return splits_from(self.data, spec, self.seed)

    def data_origin(self, spec: Spec) -> str:
        """Where the run's data came from, for error messages that must name the file."""
        if self.data is not None:
            return "the data handed to run()"
        ref = spec.data
        if ref is None:
            return "the run's data"
        return f"data {ref.source} ({ref.path})" if ref.path else f"data {ref.source}"

    def generator(self, stream: str, device: Any = None):
        """The explicit generator of one named random stream, on the device that draws."""
        from threatlang.runtime import generator

        return generator(self.seed, stream, self.device if device is None else device)

    def build_model(self, stream: str, build):
        """The caller's model if one was handed in, else `build()` under the stream's seed
        (global RNG confined), on the run's device."""
        from threatlang.runtime import build_model

        if self.model is not None:
            return self.model.to(self.device)
        return build_model(self.seed, stream, build, self.device)

    def checkpoint(self, name: str, model: Any, train, stage: str = "train"):
        """Train-and-save, or load on resume; the stage's seconds survive the resume."""
        from threatlang.runtime import checkpoint

        return checkpoint(self.out_dir, self.timings, self.resume, name, model, train, stage)


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
    """One way of turning a spec into results. What it accepts is its `capabilities` (data);
    `refine` adds the checks that need the backend's science (e.g. "detection smoothing is
    median"); `compile` returns the plan."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def accepts(self, spec: Spec) -> tuple[Unsupported, ...]:
        """The nodes of `spec` this backend cannot run (empty: it can run the whole spec)."""
        caps = self.capabilities
        family = threat_family(spec.threat)
        out: list[Unsupported] = []
        if family not in caps.families:
            what = "specs without a threat" if family is None else f"{family} threats"
            out.append(Unsupported(spec.threat or spec, f"does not handle {what}"))
        if spec.require is not None and type(spec.require) not in caps.properties:
            keyword = getattr(spec.require, "keyword", type(spec.require).__name__)
            out.append(Unsupported(spec.require, f"cannot check {keyword}"))
        for action in spec.actions:
            out.extend(self._action_problems(spec, action, family))
        data = spec.data
        if data is not None and data.source not in CORE_SOURCES:
            offer = caps.data_offer(data.source)
            if offer is None:
                out.append(Unsupported(data, f"does not generate data {data.source}"))
            else:
                out += option_problems(offer.options, data.options, f"data {data.source}", data)
        if spec.model is not None and caps.model_options is not None:
            out += option_problems(caps.model_options, spec.model.options, "model", spec.model)
        model = spec.model
        if model is not None and model.architecture not in (None, *caps.architectures):
            names = ", ".join(sorted(caps.architectures)) or "none"
            out.append(Unsupported(model, f"builtin models: {names}"))
        out.extend(self.refine(spec))
        return tuple(out)

    def _action_problems(self, spec: Spec, action, family: str | None) -> list[Unsupported]:
        offer = self.offer(spec, action)
        verb, choice = verb_of(action), choice_of(action)
        if offer is None:
            return [Unsupported(action, f"does not implement `{verb} {choice}`")]
        out = []
        k = getattr(action, "k", None)
        if offer.takes_k and k is None:
            out.append(Unsupported(action, f"{choice}(k) needs k, e.g. {choice}(10)"))
        if not offer.takes_k and k is not None:
            out.append(Unsupported(action, f"{choice} takes no k"))
        return out + option_problems(offer.options, action.options, f"{verb} {choice}", action)

    def offer(self, spec: Spec, action) -> Offer | None:
        """The declared offer that covers `action` in `spec` (its options class and limits)."""
        return self.capabilities.offer(action, threat_family(spec.threat), spec)

    def options(self, spec: Spec, action) -> Any:
        """The action's options bound to its declared class, every default filled in (what
        `compile` puts in the plan); `OptionError` when they do not bind."""
        offer = self.offer(spec, action)
        what = f"{verb_of(action)} {choice_of(action)}"
        if offer is None:
            raise OptionError(
                [Diagnostic(action.span, f"backend {self.name} does not implement `{what}`")]
            )
        return bind_options(offer.options or NoOptions, action.options, what)

    def refine(self, spec: Spec) -> list[Unsupported]:
        """Checks beyond the declarations, which need the backend's own knowledge."""
        return []

    @abc.abstractmethod
    def compile(self, spec: Spec) -> Plan:
        """A `Plan` for a spec this backend accepts."""


@attrs.frozen
class NoOptions:
    """The options class of an action that takes none (any option is an error)."""


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
    config_cls: type | None, options: tuple[Option, ...], owner: str, node: object
) -> list[Unsupported]:
    """`bind_options` as a list of `Unsupported` (`None`: the node takes no options)."""
    try:
        bind_options(config_cls or NoOptions, options, owner)
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
