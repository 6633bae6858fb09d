"""The resolved steps of a compiled ibp spec: every default filled in at compile time.

Torch-free: `threatlang compile --emit plan` prints these, and the run code reads them without
a fallback of its own. `plan.py` builds a :class:`Program` from a spec; `run.py` (and
`compare.py`, `stages.py`) execute one, importing only this module's types.
"""

from __future__ import annotations

import attrs

from threatlang.ir import Spec

from .config import AttackOptions, CertifyOptions, ModelOptions, TrainOptions


@attrs.frozen
class TrainStep:
    """`train STRATEGY(k) {...}` with the §2.7.1 schedule resolved (`halve_every` in epochs)."""

    strategy: str
    k: int | None
    epochs: int
    lr: float
    batch_size: int
    warmup: int  # epochs over which the patch interval grows to the full threat
    halve_every: int  # epochs between learning-rate halvings after the warm-up
    options: TrainOptions

    @property
    def label(self) -> str:
        """How a comparison row names this strategy: `random_patch(10)`, `pooled_patch 2-2`."""
        name = self.strategy + (f"({self.k})" if self.k is not None else "")
        if self.strategy == "pooled_patch":
            name += " " + "-".join(str(b) for b in self.options.pool)
        return name


@attrs.frozen
class AttackStep:
    """`attack METHOD {...}`: on a patch threat `step_size` is a fraction of the value range
    and `search` is `anywhere` or `corners`; on an input ball it is a fraction of the radius,
    the attack runs at the largest radius and `search` is None."""

    method: str
    steps: int
    step_size: float
    restarts: int
    search: str | None
    random_start: bool  # pgd starts at a uniform random point of the threat set, ifgsm at x
    options: AttackOptions


@attrs.frozen
class CertifyStep:
    method: str
    options: CertifyOptions


Step = TrainStep | AttackStep | CertifyStep


@attrs.frozen
class Program:
    """What an ibp run executes: the spec, the model's options and the resolved steps.

    `domain` is the valid input range that input balls are clipped to (the spec's `input {
    range }`, else the [0, 1] of the data sources); patch threats carry their own values."""

    spec: Spec
    model_options: ModelOptions
    steps: tuple[Step, ...]
    domain: tuple[float, float]

    @property
    def trains(self) -> tuple[TrainStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, TrainStep))

    @property
    def attack(self) -> AttackStep | None:
        """The attack whose results the records carry (the last one, as before)."""
        return next((s for s in reversed(self.steps) if isinstance(s, AttackStep)), None)

    @property
    def certify(self) -> CertifyStep | None:
        return next((s for s in reversed(self.steps) if isinstance(s, CertifyStep)), None)
