"""Options of `certify bab { ... }`, every default resolved here (run code has none)."""

from __future__ import annotations

import enum

import attrs

from threatlang.ir.validators import FieldError, at_least, positive

BRANCHING = ("auto", "input", "relu")


def _branching(instance, attribute, value) -> None:
    if value not in BRANCHING:
        raise FieldError(attribute.name, f"expected one of {', '.join(BRANCHING)}, got {value!r}")


class Engine(enum.Enum):
    """Who decides: our branch and bound over CROWN bounds, or Marabou (optional dependency)
    reading the same ONNX file, box and property."""

    CROWN = "crown"
    MARABOU = "marabou"


@attrs.frozen
class BabOptions:
    """`branching auto` splits inputs when there are at most `input_split_max_dims` of them
    (ACAS Xu has 5), ReLUs otherwise; `batch` domains are bounded in one engine call; PGD runs
    `pgd_restarts` x `pgd_steps` per term of the negation before branching; input splitting
    tries the `split_candidates` dimensions of largest smear per domain and keeps the best
    (strong branching; 3 of ACAS Xu's 5 measured best, BENCHMARKS.md); `shards` pre-splits
    the box into that many work items (for `--executor ray`), each with the whole time limit."""

    time_limit: float = attrs.field(default=60.0, validator=positive)
    branching: str = attrs.field(default="auto", validator=_branching)
    input_split_max_dims: int = attrs.field(default=16, validator=at_least(1))
    batch: int = attrs.field(default=64, validator=at_least(1))
    max_domains: int = attrs.field(default=200_000, validator=at_least(1))
    pgd_steps: int = attrs.field(default=50, validator=at_least(0))
    pgd_restarts: int = attrs.field(default=16, validator=at_least(0))
    split_candidates: int = attrs.field(default=3, validator=at_least(1))
    shards: int = attrs.field(default=1, validator=at_least(1))
    engine: Engine = Engine.CROWN


@attrs.frozen
class BabCertifyOptions:
    """What a spec may set inside `certify bab { ... }` (time_limit is the action's own field)."""

    branching: str = attrs.field(default="auto", validator=_branching)
    input_split_max_dims: int = attrs.field(default=16, validator=at_least(1))
    batch: int = attrs.field(default=64, validator=at_least(1))
    max_domains: int = attrs.field(default=200_000, validator=at_least(1))
    pgd_steps: int = attrs.field(default=50, validator=at_least(0))
    pgd_restarts: int = attrs.field(default=16, validator=at_least(0))
    split_candidates: int = attrs.field(default=3, validator=at_least(1))
    shards: int = attrs.field(default=1, validator=at_least(1))
    engine: Engine = Engine.CROWN

    def resolve(self, time_limit: float | None) -> BabOptions:
        return BabOptions(
            time_limit=60.0 if time_limit is None else time_limit,
            **attrs.asdict(self),
        )
