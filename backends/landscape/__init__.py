"""The `landscape` backend: gradient-free optimizers and volume estimates (chapter 7).

Does generalisation come from the loss landscape's volume rather than from gradient descent?
Guess & Check (vectorised over thousands of guessed models), Pattern Search, Random Greedy
Search and SGD are compared at matched normalised training-loss levels on few-shot problems
(two classes: Tables 7.2-7.3; every class: Table 7.4; the model's width scaled: Table 7.6),
with the poisoned model as the worst case (Table 7.1) and the wedge toy problem's decision
boundaries (Figure 7.2).

Light on purpose: declares capabilities without importing torch; the plan imports the compute
modules when it runs.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Capabilities, DataOffer, Offer, Unsupported
from threatlang.backends.choices import EvaluateKind, GeneratedData, Strategy
from threatlang.ir import Spec
from threatlang.ir.actions import (
    Evaluate,
    Train,
)
from threatlang.ir.refs import CORE_SOURCES

from .config import (
    GreedyOptions,
    GuessCheckOptions,
    PatternSearchOptions,
    SGDOptions,
    VolumeOptions,
    WedgeOptions,
)
from .summary import LandscapeSummary

__all__ = ["BACKEND", "LandscapeBackend"]


class LandscapeBackend(Backend):
    """Train strategies `guess_and_check`, `pattern_search`, `random_greedy` and `standard`
    (SGD), analysed by `evaluate volume` and `evaluate wedge`. Nothing here is certified: every
    record is an empirical measurement."""

    name: ClassVar[str] = "landscape"
    capabilities: ClassVar = Capabilities(
        families={None},
        offers=[
            Offer(Train, Strategy.GUESS_AND_CHECK, GuessCheckOptions),
            Offer(Train, Strategy.PATTERN_SEARCH, PatternSearchOptions),
            Offer(Train, Strategy.RANDOM_GREEDY, GreedyOptions),
            Offer(Train, Strategy.STANDARD, SGDOptions),
            Offer(Train, Strategy.SGD, SGDOptions),
            Offer(Evaluate, EvaluateKind.VOLUME, VolumeOptions),
            Offer(Evaluate, EvaluateKind.WEDGE, WedgeOptions),
        ],
        data=[DataOffer(GeneratedData.WEDGE)],
        architectures={
            "mlp_small": "threatlang.backends.landscape.architectures:mlp_small",
            "lenet_tiny": "threatlang.backends.landscape.architectures:lenet_tiny",
        },
        required_modules=("torch", "matplotlib", "sklearn"),
        priority=60,
        summary=LandscapeSummary,
    )

    def refine(self, spec: Spec) -> list[Unsupported]:
        out: list[Unsupported] = []
        trains = [a for a in spec.actions if isinstance(a, Train)]
        kinds = {a.kind for a in spec.actions if isinstance(a, Evaluate)}
        if not kinds & {EvaluateKind.VOLUME, EvaluateKind.WEDGE}:
            out.append(Unsupported(spec, "needs `evaluate volume` or `evaluate wedge`"))
        if EvaluateKind.VOLUME in kinds and not trains:
            out.append(
                Unsupported(
                    spec, "`evaluate volume` compares the `train` strategies: add at least one"
                )
            )
        if (
            EvaluateKind.VOLUME in kinds
            and trains
            and all(a.strategy == Strategy.STANDARD for a in trains)
        ):
            out.append(
                Unsupported(
                    spec,
                    "a volume study needs a gradient-free strategy (guess_and_check, pattern_search, random_greedy)",
                )
            )
        data = spec.data
        if EvaluateKind.VOLUME in kinds and data is not None and data.source not in CORE_SOURCES:
            out.append(
                Unsupported(
                    data,
                    f"`evaluate volume` needs labelled examples (digits, mnist, ...), not generated {data.source} data",
                )
            )
        model = spec.model
        for a in spec.actions:
            if not (isinstance(a, Evaluate) and a.kind == EvaluateKind.VOLUME):
                continue
            if any(o.name == "widths" for o in a.options) and (
                model is None or model.architecture not in ("mlp_small", "lenet_tiny")
            ):
                out.append(
                    Unsupported(
                        a,
                        "`widths` rebuilds the model at each width: use a builtin model with a "
                        "width option (mlp_small, lenet_tiny)",
                    )
                )
        seen = set()
        for a in trains:
            same = "sgd" if a.strategy in (Strategy.STANDARD, Strategy.SGD) else a.strategy
            if same in seen:
                out.append(Unsupported(a, f"strategy {a.strategy} appears twice"))
            seen.add(same)
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec, self)


BACKEND = LandscapeBackend()
