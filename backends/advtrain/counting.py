"""Count forward and backward passes through a model, weighted by the rows they carry.

The cost claims of chapter 6 are claims about passes: standard training does one
forward+backward per example, UPAT two (the doubled batch, nothing else: the gradient for the
universal pattern comes free with the training backward), PAT-k ``k + 2`` (k attack passes plus
the doubled training batch). Counting them with hooks makes those claims testable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import attrs
from torch import Tensor, nn


@attrs.define
class PassCount:
    """Running totals; ``*_rows`` weight each pass by its batch size."""

    forwards: int = 0
    backwards: int = 0
    forward_rows: int = 0
    backward_rows: int = 0

    def snapshot(self) -> PassCount:
        return attrs.evolve(self)

    def plus(self, other: PassCount) -> PassCount:
        return PassCount(
            self.forwards + other.forwards,
            self.backwards + other.backwards,
            self.forward_rows + other.forward_rows,
            self.backward_rows + other.backward_rows,
        )


@contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCount]:
    """Within the block, count every top-level forward of ``model`` and every backward through it.

    A backward is counted once per forward output it reaches (a tensor hook on the output), so
    ``torch.autograd.grad`` calls made by an attack count as well as ``loss.backward()``.
    """
    count = PassCount()

    def on_forward(_m: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        rows = int(inputs[0].shape[0])
        count.forwards += 1
        count.forward_rows += rows
        if isinstance(output, Tensor) and output.requires_grad:

            def on_backward(grad: Tensor) -> None:
                count.backwards += 1
                count.backward_rows += rows

            output.register_hook(on_backward)

    handle = model.register_forward_hook(on_forward)
    try:
        yield count
    finally:
        handle.remove()
