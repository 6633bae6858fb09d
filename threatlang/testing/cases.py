"""What a certifying backend brings to the conformance suite: a `Case`, and the registry.

A case's attack must be independent of the certificate it tests (exhaustive search, sampling
inside the set, a grid over the box), so a bound that is too optimistic is caught, not
confirmed; and its data must let something certify (a soundness check over zero certificates
cannot fail, so the suite fails instead).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

#: a one-sided test level: a sampled violation must be this unlikely to be noise
ALPHA = 1e-3


@attrs.frozen
class Run:
    """One finished run of a case: where, with what, and what came back."""

    case: Case
    dir: Path  # the case's files (spec, model, data)
    out: Path  # the run directory (records.jsonl, summary.json, checkpoints)
    kwargs: Mapping[str, Any]  # what was handed to threatlang.run besides the spec
    result: Any  # threatlang.api.RunResult

    @property
    def certified(self) -> list[str]:
        return [r.id for r in self.result.records if r.status.value == "certified"]

    def record(self, rid: str):
        return next(r for r in self.result.records if r.id == rid)


@attrs.frozen
class Trouble:
    """Numerical trouble or a time-out, injected into a run that must then certify nothing.

    `spec` rewrites the spec text; `patch(monkeypatch)` patches the backend in this process;
    `kwargs(kwargs)` swaps what is handed to run() (e.g. a model whose logits are NaN)."""

    name: str
    spec: Callable[[str], str] = lambda text: text
    patch: Callable[[Any], None] = lambda monkeypatch: None
    kwargs: Callable[[dict], dict] = lambda kwargs: kwargs


@attrs.frozen
class Case:
    """A certifying backend's entry in the suite.

    - `spec`: spec text; `{dir}` is replaced by the case directory (absolute paths)
    - `prepare(dir)`: writes the files the spec names, returns run() keyword arguments
    - `attack(run, ids)`: the backend's strongest attack / exact check on items `ids`;
      returns {id: what it found} for every item whose claim it breaks
    - `clean(run)`: the items whose property holds at the unperturbed point
    - `ladder(run)`: rows (what, certified, empirical, clean) of the backend's own summary
      figures, each ordered certified <= empirical <= clean
    - `troubles`: time-outs and numerical trouble that must never be certified
    - `volatile`: record value keys that are wall times (dropped when comparing runs)
    - `distributes`: the backend sends work items to the executor (Ray is really used)
    - `xfail`: check name -> exactly what the backend does not meet yet (strict xfail); the
      check names are those of `threatlang.testing.suite.CHECKS`
    """

    id: str
    backend: str
    spec: str
    prepare: Callable[[Path], dict]
    attack: Callable[[Run, list[str]], dict[str, str]]
    clean: Callable[[Run], set[str]]
    ladder: Callable[[Run], list[tuple[str, float, float, float]]]
    troubles: tuple[Trouble, ...]
    volatile: tuple[str, ...] = ()
    distributes: bool = True
    xfail: Mapping[str, str] = attrs.field(factory=dict)

    def spec_text(self, directory: Path) -> str:
        return self.spec.replace("{dir}", str(directory))


@attrs.frozen
class _Entry:
    case: Case
    origin: str | None  # the file that registered it (a SIGKILL test reloads it there)


_REGISTRY: dict[str, _Entry] = {}


def register(*cases: Case) -> None:
    """Add cases to the suite (a case id registered again is replaced: re-imports are fine).
    The calling file is remembered, so the SIGKILL check can load the case in a subprocess."""
    caller = inspect.currentframe().f_back
    origin = caller.f_globals.get("__file__") if caller is not None else None
    for case in cases:
        _REGISTRY[case.id] = _Entry(case, origin)


def registered() -> tuple[Case, ...]:
    """The registered cases, in registration order."""
    return tuple(e.case for e in _REGISTRY.values())


def case_named(name: str) -> Case:
    return _REGISTRY[name].case


def origin_of(name: str) -> str | None:
    """The file that registered case `name`."""
    return _REGISTRY[name].origin


def clopper_pearson_upper(k: int, n: int, alpha: float = ALPHA) -> float:
    """One-sided Clopper-Pearson upper bound on a binomial proportion (for sampled attacks)."""
    from scipy import stats

    return 1.0 if k == n else float(stats.beta.ppf(1 - alpha, k + 1, n - k))


__all__ = [
    "ALPHA",
    "Case",
    "Run",
    "Trouble",
    "case_named",
    "clopper_pearson_upper",
    "origin_of",
    "register",
    "registered",
]
