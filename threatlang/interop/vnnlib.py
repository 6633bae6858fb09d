"""VNN-LIB properties: a disjunction of input boxes and an unsafe output set, written in the
VNN-COMP dialect (VNN-LIB 1.0: `X_i`/`Y_j` constants) or in VNN-LIB 2.0 (a declared network,
indexed tensors; what the PyPI `vnnlib` package parses), and read back from either.

A query states where a counterexample would be: some input in one of the boxes whose output
lies in the unsafe set. A verifier answering `unsat` proves the property. Text in
`vnnlib_write`, our reader in `vnnlib_read`.
"""

from __future__ import annotations

import attrs
import numpy as np


def _flat(a) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).ravel() + 0.0  # + 0.0 turns -0.0 into 0.0


@attrs.frozen(eq=False)
class Box:
    """Elementwise bounds `lo <= x <= hi` on the flattened input."""

    lo: np.ndarray = attrs.field(converter=_flat)
    hi: np.ndarray = attrs.field(converter=_flat)

    def same(self, other: Box) -> bool:
        return np.array_equal(self.lo, other.lo) and np.array_equal(self.hi, other.hi)


@attrs.frozen
class Linear:
    """`sum(c * Y[i] for i, c in terms) <= rhs`."""

    terms: tuple[tuple[int, float], ...]
    rhs: float


@attrs.frozen(eq=False)
class Query:
    input_shape: tuple[int, ...]
    num_outputs: int
    boxes: tuple[Box, ...]  # the input lies in one of these
    unsafe: tuple[tuple[Linear, ...], ...]  # a counterexample's output meets one of these


def label_unsafe(label: int, num_outputs: int) -> tuple[tuple[Linear, ...], ...]:
    """Unsafe for `label_unchanged`: some other logit reaches the true one (Y_j >= Y_label)."""
    return tuple(
        (Linear(tuple(sorted(((label, 1.0), (j, -1.0)))), 0.0),)
        for j in range(num_outputs)
        if j != label
    )


def unsafe_label(query: Query) -> int | None:
    """The label whose `label_unchanged` property `query.unsafe` states, if it is one."""
    for label in range(query.num_outputs):
        want = label_unsafe(label, query.num_outputs)
        if set(want) == set(query.unsafe) and len(want) == len(query.unsafe):
            return label
    return None
