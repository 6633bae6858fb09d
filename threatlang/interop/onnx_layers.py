"""The torch layers an imported ONNX graph is made of.

Library layers (`nn.Linear`, `nn.Conv2d`, `nn.ReLU`, ...) are used wherever ONNX has one; what
follows covers the rest, one small module per kind of step, each a single torch call on a tensor
whose first axis is the batch. Every constant a step needs is a buffer (so `.to()` and
`torch.export` see it) and every size is a Python int fixed at import: nothing in a `forward`
depends on tensor values, so capture yields one static graph whatever the batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn


def _name(fn: Callable) -> str:
    return getattr(fn, "__name__", repr(fn))


class _WithConstants(nn.Module):
    """Holds operands that are either a step input (an int: its position) or a constant tensor
    (kept as buffer ``c<k>``)."""

    def __init__(self, slots: Sequence[int | Tensor]) -> None:
        super().__init__()
        order: list[int | str] = []
        for k, slot in enumerate(slots):
            if isinstance(slot, int):
                order.append(slot)
            else:
                self.register_buffer(f"c{k}", slot.detach().clone())
                order.append(f"c{k}")
        self.order = tuple(order)

    def operands(self, xs: tuple[Tensor, ...]) -> list[Tensor]:
        return [xs[s] if isinstance(s, int) else getattr(self, s) for s in self.order]

    def constant(self, k: int) -> Tensor | None:
        s = self.order[k]
        return None if isinstance(s, int) else getattr(self, s)


class Elementwise(_WithConstants):
    """``fn(*operands)``: arithmetic, comparisons, ``where``, ``matmul`` with constants baked in
    already shaped for torch broadcasting against the batch axis."""

    def __init__(self, fn: Callable[..., Tensor], slots: Sequence[int | Tensor]) -> None:
        super().__init__(slots)
        self.fn = fn

    def forward(self, *xs: Tensor) -> Tensor:
        return self.fn(*self.operands(xs))

    def extra_repr(self) -> str:
        return f"{_name(self.fn)}, operands={self.order}"


class Unary(nn.Module):
    """``fn(x)`` for a torch function with no parameters (abs, exp, sign, ...)."""

    def __init__(self, fn: Callable[[Tensor], Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def extra_repr(self) -> str:
        return _name(self.fn)


class Power(nn.Module):
    """``x ** exponent`` for a constant scalar exponent (ATen ``pow.Tensor_Scalar``)."""

    def __init__(self, exponent: float) -> None:
        super().__init__()
        self.exponent = exponent

    def forward(self, x: Tensor) -> Tensor:
        return torch.pow(x, self.exponent)

    def extra_repr(self) -> str:
        return f"exponent={self.exponent}"


class Clamp(nn.Module):
    """``clamp(x, low, high)`` with constant bounds (either may be absent)."""

    def __init__(self, low: float | None, high: float | None) -> None:
        super().__init__()
        self.low, self.high = low, high

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x, self.low, self.high)

    def extra_repr(self) -> str:
        return f"low={self.low}, high={self.high}"


class Cast(nn.Module):
    """``x.to(dtype)``: a change of element type that changes values (to integers or booleans)."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def forward(self, x: Tensor) -> Tensor:
        return x.to(self.dtype)

    def extra_repr(self) -> str:
        return str(self.dtype)


class Reshape(nn.Module):
    """``x.reshape(batch, *shape)``."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(int(d) for d in shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Permute(nn.Module):
    """``x.permute(dims)`` (``dims[0]`` is always 0, the batch axis)."""

    def __init__(self, dims: Sequence[int]) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return f"dims={self.dims}"


class Slice(nn.Module):
    """``x[:, ...]`` with positive-step slices on some axes (ONNX Slice, Split)."""

    def __init__(self, index: Sequence[slice]) -> None:
        super().__init__()
        self.index = tuple(index)

    def forward(self, x: Tensor) -> Tensor:
        return x[self.index]

    def extra_repr(self) -> str:
        return f"index={self.index}"


class IndexSelect(nn.Module):
    """``index_select(x, dim, index)`` then a reshape: ONNX Gather with constant indices, slices
    with negative steps and nearest-neighbour resizing."""

    def __init__(self, dim: int, index: Tensor, shape: Sequence[int] | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("index", index.detach().clone().to(torch.int64))
        self.shape = None if shape is None else tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        y = torch.index_select(x, self.dim, self.index)
        return y if self.shape is None else y.reshape(y.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, {self.index.numel()} indices"


class Concat(_WithConstants):
    """``cat`` along ``dim`` of inputs and constants (each constant repeated over the batch)."""

    def __init__(self, dim: int, slots: Sequence[int | Tensor]) -> None:
        super().__init__(slots)
        self.dim = dim

    def forward(self, *xs: Tensor) -> Tensor:
        n = xs[0].shape[0]
        parts = [
            p if isinstance(s, int) else p.expand(n, *p.shape[1:])
            for s, p in zip(self.order, self.operands(xs), strict=True)
        ]
        return torch.cat(parts, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, operands={self.order}"


class Reduce(nn.Module):
    """``fn(x, dims, keepdim)`` for ``torch.sum``, ``torch.mean``, ``torch.amax``, ``torch.amin``."""

    def __init__(self, fn: Callable[..., Tensor], dims: Sequence[int], keepdim: bool) -> None:
        super().__init__()
        self.fn, self.dims, self.keepdim = fn, tuple(dims), keepdim

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(x, self.dims, keepdim=self.keepdim)

    def extra_repr(self) -> str:
        return f"{_name(self.fn)}, dims={self.dims}, keepdim={self.keepdim}"


class Pad(nn.Module):
    """``F.pad`` (pads in torch's order: last axis first); mode is torch's name for it."""

    def __init__(self, pads: Sequence[int], mode: str, value: float) -> None:
        super().__init__()
        self.pads, self.mode, self.value = tuple(pads), mode, value

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "constant":
            return nn.functional.pad(x, self.pads, value=self.value)
        return nn.functional.pad(x, self.pads, mode=self.mode)

    def extra_repr(self) -> str:
        return f"pads={self.pads}, mode={self.mode}, value={self.value}"


class Expand(nn.Module):
    """``x.expand(batch, *shape)`` (ONNX Expand after the ranks are aligned)."""

    def __init__(self, shape: Sequence[int]) -> None:
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x: Tensor) -> Tensor:
        return x.expand(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return f"shape={self.shape}"


class Tile(nn.Module):
    """``x.repeat(1, *repeats)``."""

    def __init__(self, repeats: Sequence[int]) -> None:
        super().__init__()
        self.repeats = tuple(repeats)

    def forward(self, x: Tensor) -> Tensor:
        return x.repeat(1, *self.repeats)

    def extra_repr(self) -> str:
        return f"repeats={self.repeats}"


class ConstantOutput(nn.Module):
    """A network output that does not depend on the input: the constant, once per example."""

    def __init__(self, value: Tensor) -> None:
        super().__init__()
        self.register_buffer("value", value.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.value.unsqueeze(0).expand(x.shape[0], *self.value.shape)


# --- functions used by Elementwise / Unary (module level, so modules deep-copy and pickle) ----
def int_div(a: Tensor, b: Tensor) -> Tensor:
    """ONNX Div on integers truncates."""
    return torch.div(a, b, rounding_mode="trunc")


def prelu(x: Tensor, slope: Tensor) -> Tensor:
    return torch.where(x >= 0, x, x * slope)


class OnnxNetwork(nn.Module):
    """An ONNX graph that is not a chain: ``steps`` run in order, step ``k`` writing value
    ``k + 1`` (value 0 is the input) from the values ``wiring[k]`` names; a value is dropped after
    its last reader, so memory is that of the live values, not of the whole graph."""

    def __init__(self, steps: nn.ModuleDict, wiring: Sequence[Sequence[int]], output: int) -> None:
        super().__init__()
        self.steps = steps
        self.wiring = tuple(tuple(w) for w in wiring)
        self.output = output
        last: dict[int, int] = {}
        for k, refs in enumerate(self.wiring):
            for r in refs:
                last[r] = k
        self.release = tuple(
            tuple(r for r, k2 in last.items() if k2 == k and r != output)
            for k in range(len(self.wiring))
        )

    def forward(self, x: Tensor) -> Tensor:
        values = {0: x}
        for k, step in enumerate(self.steps.values()):
            values[k + 1] = step(*(values[r] for r in self.wiring[k]))
            for r in self.release[k]:
                del values[r]
        return values[self.output]
