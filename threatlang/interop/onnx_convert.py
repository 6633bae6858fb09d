"""Walk an ONNX graph in order and turn it into torch steps with static shapes.

Every ONNX value is either a `Const` (it does not depend on the network's input: initializers,
`Constant`, `Shape` of a static shape, and anything computed from those only, which is folded
here, once) or a `Dyn` (a tensor computed from the input, produced by a recorded step).

Batch layout. The module runs on a batch of N inputs. A `Dyn` whose ONNX shape starts with the
ONNX batch axis of size 1 may be held ``batch_first`` (torch shape ``(N, *shape[1:])``: ONNX's
axis 0 *is* the batch); any `Dyn` may be held with a batch axis prepended (torch shape
``(N, *shape)``), which is always correct because every ONNX op then acts on one example. Ops
that touch ONNX axis 0 convert their input to the prepended layout first; layers that need the
batch axis (Conv, pooling) convert to ``batch_first``. Both conversions are reshapes.

Sizes are checked before anything is allocated (torch's meta tensors give each step's output
shape), so a hostile file is refused with a sentence rather than exhausting memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch import Tensor, nn

from ..errors import UsageError
from .onnx_common import MAX_ELEMENTS, MAX_TOTAL_ELEMENTS, REFUSED, first_line
from .onnx_layers import Reshape

#: the batch size the shapes of recorded steps are checked with (not 1, so that a step that
#: mixed the batch axis with another one shows up as a wrong shape)
_PROBE_BATCH = 3
_STANDARD_DOMAINS = ("", "ai.onnx")


@attrs.frozen(eq=False)
class Const:
    """A value known at import: the ONNX tensor itself (no batch axis), in its ONNX dtype."""

    tensor: Tensor

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.tensor.shape)


@attrs.frozen(eq=False)
class Dyn:
    """A value computed from the input: the output of step ``ref - 1`` (ref 0 is the input).

    ``folded`` is set while an op is evaluated on constants through the same torch step (a
    batch of one, prepended), so constant folding and the network share one implementation.
    """

    ref: int
    shape: tuple[int, ...]
    dtype: torch.dtype
    batch_first: bool
    folded: Tensor | None = None

    @property
    def torch_shape(self) -> tuple[int, ...]:
        """Per-example torch shape (after the batch axis)."""
        return self.shape[1:] if self.batch_first else self.shape

    def axis(self, onnx_axis: int) -> int:
        """The torch axis of ONNX axis ``onnx_axis`` (normalised, >= 0)."""
        if self.batch_first:
            assert onnx_axis > 0, "ONNX axis 0 is the batch axis in this layout"
            return onnx_axis
        return onnx_axis + 1


Value = Const | Dyn


@attrs.frozen
class Step:
    """One torch module of the network, the value refs it reads, and its output's torch shape."""

    name: str
    module: nn.Module
    inputs: tuple[int, ...]
    shape: tuple[int, ...]


def shown(text: str) -> str:
    """``text`` from the file as it may appear in a one-line message (clipped, escaped)."""
    if text.isascii() and text.isprintable() and len(text) <= 80:
        return text
    return repr(text[:80])


def normalise_axis(node: OnnxNode, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise node.error(f"has axis {axis}, outside a tensor of rank {rank}")
    return axis % rank if rank else 0


class OnnxNode:
    """One node with typed attribute access and errors that name it."""

    def __init__(self, proto: Any, index: int, path: Path, opset: int) -> None:
        self.proto, self.path, self.opset = proto, path, opset
        self.op: str = proto.op_type
        self.domain: str = proto.domain
        name = proto.name or f"#{index}"
        self.name: str = name if len(name) <= 80 else name[:79] + "…"
        self.inputs: list[str] = list(proto.input)
        self.outputs: list[str] = list(proto.output)
        self._attrs = {a.name: a for a in proto.attribute}

    def error(self, why: str) -> UsageError:
        return UsageError(f"{self.path}: node {self.name!r} ({shown(self.op)}) {why}.")

    def has(self, name: str) -> bool:
        return name in self._attrs

    def attr(self, name: str, default: Any = None) -> Any:
        if name not in self._attrs:
            return default
        from onnx import AttributeProto, helper

        proto = self._attrs[name]
        if proto.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS):
            raise self.error("has a subgraph attribute, which has no static form")
        value = helper.get_attribute_value(proto)
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        if isinstance(value, list):
            return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in value]
        return value

    def ints(self, name: str, default: Sequence[int] | None = None) -> list[int] | None:
        value = self.attr(name)
        return None if value is None and default is None else [int(v) for v in (value or default)]


Converter = Callable[["GraphConverter", OnnxNode], "Value | Sequence[Value]"]


class GraphConverter:
    """The state of one conversion: ONNX values by name, recorded steps, memory spent."""

    def __init__(
        self,
        path: Path,
        graph: Any,
        opset: int,
        ops: dict[str, Converter],
        real: torch.dtype = torch.float32,
    ) -> None:
        self.path, self.graph, self.opset, self.ops = path, graph, opset, ops
        self.real = real  # the network's float type: that of its input
        self.values: dict[str, Value] = {}
        self.steps: list[Step] = []
        self.total = 0
        self.readers = Counter(n for node in graph.node for n in node.input if n)
        self.readers.update(o.name for o in graph.output)
        self._names: set[str] = set()

    # --- values --------------------------------------------------------------------------------
    def get(self, node: OnnxNode, i: int) -> Value | None:
        """Input ``i`` of ``node``, or None when it is absent (optional and not given)."""
        if i >= len(node.inputs) or not node.inputs[i]:
            return None
        name = node.inputs[i]
        if name not in self.values:
            raise node.error(
                f"reads {name!r} before it is computed (the graph is not in topological order)"
            )
        return self.values[name]

    def need(self, node: OnnxNode, i: int) -> Value:
        v = self.get(node, i)
        if v is None:
            raise node.error(f"lacks its input {i + 1}")
        return v

    def const(self, node: OnnxNode, i: int, what: str) -> Tensor | None:
        """The constant value of input ``i`` (None when absent); refused when it depends on the
        network's input, since then no shape or parameter is static."""
        v = self.get(node, i)
        if v is None:
            return None
        if isinstance(v, Dyn):
            raise node.error(
                f"takes its {what} from the network's input values, so it has no static form"
            )
        return v.tensor

    def ints(self, node: OnnxNode, i: int, what: str) -> list[int] | None:
        t = self.const(node, i, what)
        return None if t is None else [int(v) for v in t.reshape(-1).tolist()]

    def check_size(
        self, node: OnnxNode, shape: Sequence[int], per: str = "", count: bool = True
    ) -> None:
        """Refuse a tensor of ``shape`` over the per-tensor limit, and (``count``: it is
        created) one that takes all tensors over the total."""
        if any(int(d) < 0 for d in shape):
            raise node.error(f"gives a tensor of negative shape {tuple(shape)}")
        n = int(np.prod([int(d) for d in shape], dtype=object))
        if n > MAX_ELEMENTS:
            raise node.error(
                f"would create a tensor of {n:,} elements{per} ({_bytes(n)}), over threatlang's "
                f"limit of {MAX_ELEMENTS:,}; export the network with smaller shapes"
            )
        self.total += n if count else 0
        if self.total > MAX_TOTAL_ELEMENTS:
            raise node.error(
                f"brings the network's tensors to {self.total:,} elements "
                f"({_bytes(self.total)}), over threatlang's limit of {MAX_TOTAL_ELEMENTS:,}; "
                "export the network with smaller shapes"
            )

    def fold(self, node: OnnxNode, fn: Callable[..., Tensor], *args: Any) -> Const:
        """``fn(*args)`` on constants, its size checked on meta tensors first."""
        meta = [a.to("meta") if isinstance(a, Tensor) else a for a in args]
        try:
            shape = tuple(fn(*meta).shape)
        except NotImplementedError:
            shape = None
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            raise node.error(f"cannot be computed ({first_line(err)})") from None
        if shape is not None:
            self.check_size(node, shape)
        try:
            return Const(fn(*args))
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            raise node.error(f"cannot be computed ({first_line(err)})") from None

    # --- layouts -------------------------------------------------------------------------------
    def data(self, v: Value) -> Dyn:
        """``v`` as an operand of a step: a constant becomes a folded batch of one."""
        if isinstance(v, Dyn):
            return v
        return Dyn(-1, v.shape, v.tensor.dtype, False, v.tensor.unsqueeze(0))

    def prepended(self, node: OnnxNode, x: Dyn) -> Dyn:
        if not x.batch_first:
            return x
        return self.emit(node, Reshape(x.shape), [x], batch_first=False)

    def batch_first(self, node: OnnxNode, x: Dyn, why: str = "") -> Dyn:
        if x.batch_first:
            return x
        if len(x.shape) < 2 or x.shape[0] != 1:
            raise node.error(
                f"needs its input's first axis to be a batch of 1, but the input has shape "
                f"{list(x.shape)}{why}"
            )
        return self.emit(node, Reshape(x.shape[1:]), [x], batch_first=True)

    def reshape(self, node: OnnxNode, x: Dyn, shape: Sequence[int]) -> Dyn:
        """``x`` with ONNX shape ``shape`` (same element count): batch-first when the new shape
        keeps a leading axis of 1, which any layout reaches in one reshape."""
        shape = tuple(int(d) for d in shape)
        if shape == x.shape:
            return x
        batch_first = len(shape) >= 2 and shape[0] == 1
        target = shape[1:] if batch_first else shape
        if target == x.torch_shape:  # the same torch tensor, only its ONNX reading changes
            return attrs.evolve(x, shape=shape, batch_first=batch_first)
        flat = len(target) == 1 and len(x.torch_shape) >= 2
        module = nn.Flatten() if flat else Reshape(target)
        return self.emit(node, module, [x], batch_first)

    def pad_rank(self, node: OnnxNode, x: Dyn, rank: int) -> Dyn:
        """``x`` (prepended) with leading ONNX axes of size 1 up to ``rank`` (numpy broadcasting)."""
        x = self.prepended(node, x)
        if len(x.shape) >= rank:
            return x
        return self.emit(node, Reshape((1,) * (rank - len(x.shape)) + x.shape), [x], False)

    # --- steps ---------------------------------------------------------------------------------
    def emit(
        self, node: OnnxNode, module: nn.Module, inputs: Sequence[Dyn], batch_first: bool
    ) -> Dyn:
        """Record ``module`` applied to ``inputs`` (all folded: evaluate it now instead)."""
        folded = [x.folded is not None for x in inputs]
        if inputs and all(folded):
            return self._evaluate(node, module, inputs, batch_first)
        assert not any(folded), "a step mixes folded constants and computed values"
        probes = [
            torch.empty((_PROBE_BATCH, *x.torch_shape), dtype=x.dtype, device="meta")
            for x in inputs
        ]
        out = self._meta(node, module, probes)
        if out is None:  # no meta kernel: run it on zeros (inputs are already size-checked)
            with torch.no_grad():
                out = module(*(torch.zeros_like(p, device="cpu") for p in probes))
        if out.dim() == 0 or out.shape[0] != _PROBE_BATCH:
            raise node.error("could not be converted (internal batch-layout error; please report)")
        per = tuple(int(d) for d in out.shape[1:])
        self.check_size(node, per, " per input")
        if 0 in per:
            raise node.error(f"gives an empty tensor of shape {list(per)}")
        self.steps.append(Step(self._step_name(node), module, tuple(x.ref for x in inputs), per))
        shape = (1, *per) if batch_first else per
        return Dyn(len(self.steps), shape, out.dtype, batch_first)

    def _evaluate(self, node, module, inputs, batch_first) -> Dyn:
        args = [x.folded for x in inputs]
        if any(True for _ in module.parameters()):  # layers hold float32 weights
            args = [a.to(self.real) if a.is_floating_point() else a for a in args]
        out = self._meta(node, module, [a.to("meta") for a in args])
        if out is not None:
            self.check_size(node, out.shape)
        with torch.no_grad():
            try:
                value = module(*args)
            except (RuntimeError, ValueError, IndexError) as err:
                raise node.error(f"cannot be computed ({first_line(err)})") from None
        shape = tuple(value.shape[1:])
        if batch_first:
            shape = (1, *shape)
        return Dyn(-1, shape, value.dtype, batch_first, value)

    def _meta(self, node: OnnxNode, module: nn.Module, args: list[Tensor]) -> Tensor | None:
        state = {k: v.to("meta") for k, v in module.state_dict(keep_vars=True).items()}
        try:
            with torch.no_grad():
                return torch.func.functional_call(module, state, tuple(args))
        except NotImplementedError:
            return None
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            raise node.error(f"cannot be applied to its inputs ({first_line(err)})") from None

    def settle(self, v: Value) -> Value:
        """A folded result becomes a plain constant (without its batch axis of one)."""
        if isinstance(v, Dyn) and v.folded is not None:
            t = v.folded if v.batch_first else v.folded[0]
            return Const(t.detach())
        return v

    def _step_name(self, node: OnnxNode) -> str:
        base = "".join(c if c.isascii() and c.isalnum() else "_" for c in node.name[:60])
        base = base.strip("_") or "step"
        base = f"n_{base}" if base[0].isdigit() else base
        name, k = base, 1
        while name in self._names:
            name, k = f"{base}_{k}", k + 1
        self._names.add(name)
        return name

    # --- the walk ------------------------------------------------------------------------------
    def run(self) -> None:
        for index, proto in enumerate(self.graph.node):
            node = OnnxNode(proto, index, self.path, self.opset)
            if node.domain not in _STANDARD_DOMAINS:
                raise node.error(
                    f"is from domain {node.domain[:80]!r}, not the standard ONNX operator set; "
                    "threatlang converts only standard operators, never one by its name alone"
                )
            if node.op in REFUSED:
                raise node.error(REFUSED[node.op])
            convert = self.ops.get(node.op)
            if convert is None:
                raise node.error(
                    "is an ONNX operator threatlang does not convert (the ones it converts are "
                    "listed in threatlang.interop.onnx_import.SUPPORTED)"
                )
            try:
                result = convert(self, node)
            except UsageError:
                raise
            except Exception as err:  # a case the converter did not foresee: still one sentence
                raise node.error(
                    f"could not be converted ({type(err).__name__}: {first_line(err)}); "
                    "please report the model"
                ) from err
            outs = [result] if isinstance(result, Const | Dyn) else list(result)
            for k, name in enumerate(node.outputs):
                if not name:
                    continue
                if k >= len(outs):
                    if self.readers[name]:
                        raise node.error(f"output {k + 1} is read, but threatlang does not give it")
                    continue
                self.values[name] = self.settle(outs[k])


def _bytes(n: int) -> str:
    size = 4.0 * n
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.3g} {unit} as float32"
        size /= 1024
    return ""  # pragma: no cover
