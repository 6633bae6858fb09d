"""The `landscape` backend: gradient-free optimizers and volume estimates (chapter 7).

Does generalisation come from the loss landscape's volume rather than from gradient descent?
Guess & Check (vectorised over thousands of guessed models), Pattern Search, Random Greedy
Search and SGD are compared at matched normalised training-loss levels on few-shot two-class
problems (Table 7.2), with the poisoned model as the worst case (Table 7.1) and the wedge toy
problem's decision boundaries (Figure 7.2).

Light on purpose: declares capabilities without importing torch; the plan imports the compute
modules when it runs.
"""

from __future__ import annotations

from typing import ClassVar

from threatlang.backends.base import Backend, Unsupported, option_problems
from threatlang.ir import Spec
from threatlang.ir.actions import Evaluate, EvaluateKind, Strategy, Train
from threatlang.ir.refs import GENERATED_SOURCES

from .config import VolumeOptions, WedgeOptions

__all__ = ["BACKEND", "LandscapeBackend"]


class LandscapeBackend(Backend):
    """Train strategies `guess_and_check`, `pattern_search`, `random_greedy` and `standard`
    (SGD), analysed by `evaluate volume` and `evaluate wedge`. Nothing here is certified: every
    record is an empirical measurement."""

    name: ClassVar[str] = "landscape"
    threats: ClassVar[frozenset] = frozenset({None})
    properties: ClassVar[frozenset] = frozenset()
    actions: ClassVar = {
        Train: frozenset(
            {
                Strategy.GUESS_AND_CHECK,
                Strategy.PATTERN_SEARCH,
                Strategy.RANDOM_GREEDY,
                Strategy.STANDARD,
            }
            | ({Strategy.SGD} if hasattr(Strategy, "SGD") else set())
        ),
        Evaluate: frozenset({EvaluateKind.VOLUME, EvaluateKind.WEDGE}),
    }
    required_modules: ClassVar[tuple[str, ...]] = ("torch", "matplotlib", "sklearn")
    architectures: ClassVar = {
        "mlp_small": "threatlang.backends.landscape.architectures:mlp_small",
        "lenet_tiny": "threatlang.backends.landscape.architectures:lenet_tiny",
    }

    def accepts(self, spec: Spec) -> tuple[Unsupported, ...]:
        out = list(super().accepts(spec))
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
            and all(a.strategy is Strategy.STANDARD for a in trains)
        ):
            out.append(
                Unsupported(
                    spec,
                    "a volume study needs a gradient-free strategy (guess_and_check, pattern_search, random_greedy)",
                )
            )
        data = spec.data
        if EvaluateKind.VOLUME in kinds and data is not None and data.source in GENERATED_SOURCES:
            out.append(
                Unsupported(
                    data,
                    f"`evaluate volume` needs labelled examples (digits, mnist, ...), not generated {data.source.value} data",
                )
            )
        seen = set()
        for a in trains:
            if a.strategy in seen:
                out.append(Unsupported(a, f"strategy {a.strategy.value} appears twice"))
            seen.add(a.strategy)
        return tuple(out)

    def check_options(self, spec: Spec) -> list[Unsupported]:
        from .plan import STRATEGY_OPTIONS

        out: list[Unsupported] = []
        for action in spec.actions:
            if isinstance(action, Train) and action.strategy in STRATEGY_OPTIONS:
                cls = STRATEGY_OPTIONS[action.strategy][0]
                out.extend(
                    option_problems(cls, action.options, f"train {action.strategy.value}", action)
                )
            elif isinstance(action, Evaluate) and action.kind in (
                EvaluateKind.VOLUME,
                EvaluateKind.WEDGE,
            ):
                cls = VolumeOptions if action.kind is EvaluateKind.VOLUME else WedgeOptions
                out.extend(
                    option_problems(cls, action.options, f"evaluate {action.kind.value}", action)
                )
        return out

    def compile(self, spec: Spec):
        from .plan import compile_plan

        return compile_plan(spec)


BACKEND = LandscapeBackend()
