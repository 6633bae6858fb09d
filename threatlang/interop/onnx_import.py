"""ONNX → torch: any graph over the standard ONNX operators, as a module the bound engine captures.

The graph is walked in order (`onnx_convert`); every value gets a static shape, everything that
does not depend on the input (``Shape → Gather → Concat → Reshape``, constant arithmetic) is
folded here, and the rest becomes torch steps (`onnx_ops_*`): library layers where ONNX has
one, otherwise one small module per step (`onnx_layers`). A chain of steps comes back as an
`nn.Sequential`; any other graph as an `OnnxNetwork`. The module takes a batch of inputs, each
of the ONNX input's shape less its leading batch axis of 1 (a rank-1 input or one whose first
axis is not 1 is taken whole).

Refused, with one sentence naming the node and operator: operators outside the standard
domains (never converted by name alone), operators with no static or sound form (random
values, control flow, shapes computed from input values), unreadable or hostile files (sizes
over `MAX_ELEMENTS`, external data, negative dims). When onnxruntime is installed the result is
compared with it on seeded random inputs before it is used, and a mismatch is refused.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UsageError
from .onnx_common import MAX_ELEMENTS, SUPPORTED, first_line

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "SUPPORTED",
    "check_against_onnxruntime",
    "convert_model",
    "example_shape",
    "load_onnx",
    "network_input_shape",
    "read_model",
]


def converters() -> dict:
    """Converter per operator, from the ``onnx_ops_*`` tables (their keys are `SUPPORTED`)."""
    from .onnx_ops_math import CONVERTERS as MATH
    from .onnx_ops_nn import CONVERTERS as NN
    from .onnx_ops_shape import CONVERTERS as SHAPE

    return {**MATH, **SHAPE, **NN}


def _onnx():
    try:
        import onnx
    except ImportError:
        raise UsageError("ONNX models need the onnx package: pip install -e '.[onnx]'.") from None
    return onnx


def read_model(path: str | Path):
    """The ModelProto at ``path`` (external data never loaded), or a `UsageError` saying why
    the file is not a usable ONNX model."""
    onnx = _onnx()
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"ONNX model {path} not found (or not a file).")
    if path.stat().st_size == 0:
        raise UsageError(f"not a valid ONNX model: {path} (the file is empty).")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends: truncated or foreign bytes
        raise UsageError(f"not a valid ONNX model: {path} ({first_line(err)}).") from None
    graph = model.graph
    if not graph.node or not graph.input or not graph.output:
        raise UsageError(
            f"not a valid ONNX model: {path} (its graph has {len(graph.node)} nodes, "
            f"{len(graph.input)} inputs and {len(graph.output)} outputs)."
        )
    return model


def _opset(path: Path, model) -> int:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        raise UsageError(f"{path}: the model declares no version of the standard ONNX opset.")
    return int(versions[0])


def _input_shape(path: Path, value) -> tuple[int, ...]:
    """The static ONNX shape of the network input (a symbolic first axis is the batch: 1)."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        raise UsageError(f"{path}: the input {value.name!r} is not a tensor.")
    from onnx import TensorProto

    elem = value.type.tensor_type.elem_type
    if elem not in (TensorProto.FLOAT, TensorProto.DOUBLE):
        raise UsageError(
            f"{path}: the input {value.name!r} has element type "
            f"{TensorProto.DataType.Name(elem) if elem in TensorProto.DataType.values() else elem}"
            "; threatlang verifies networks with float or double inputs."
        )
    if not value.type.tensor_type.HasField("shape"):
        raise UsageError(f"{path}: the input {value.name!r} has no shape; export with one.")
    dims = []
    for i, d in enumerate(value.type.tensor_type.shape.dim):
        fixed = d.HasField("dim_value")
        if fixed and d.dim_value < 0:
            raise UsageError(f"{path}: the input {value.name!r} has a negative dimension.")
        if fixed and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif i == 0:
            dims.append(1)  # a batch axis left symbolic
        else:
            raise UsageError(
                f"{path}: dimension {i} of the input {value.name!r} is not fixed; export the "
                "network with a static input shape."
            )
    n = math.prod(dims)
    if n > MAX_ELEMENTS:
        raise UsageError(
            f"{path}: the input {value.name!r} has {n:,} elements, over threatlang's limit of "
            f"{MAX_ELEMENTS:,}; export the network with a smaller input."
        )
    return tuple(dims)


def network_input_shape(path: str | Path) -> tuple[int, ...]:
    """The static ONNX shape of the network's one input (batch axis included; a symbolic
    first axis reads as 1), or a `UsageError` saying why the file gives none. For readers of
    instance files that need the shape before converting (never a raw onnx error)."""
    path = Path(path)
    model = read_model(path)
    weights = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    if len(inputs) != 1:
        raise UsageError(
            f"{path}: the network has {len(inputs)} inputs; threatlang verifies networks with one."
        )
    return _input_shape(path, inputs[0])


def _batch_first(shape: tuple[int, ...]) -> bool:
    return len(shape) >= 2 and shape[0] == 1


def example_shape(onnx_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-example shape the converted module takes for an ONNX input shape."""
    return onnx_shape[1:] if _batch_first(onnx_shape) else onnx_shape


def convert_model(path: str | Path, model=None) -> nn.Module:
    """The converted module (eval mode), unchecked against onnxruntime."""
    import torch
    from onnx import TensorProto

    from .onnx_convert import GraphConverter

    path = Path(path)
    model = read_model(path) if model is None else model
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise UsageError(
            f"{path}: the network has {_count(len(inputs), 'input')} and "
            f"{_count(len(graph.output), 'output')}; threatlang verifies networks with one of each."
        )
    double = inputs[0].type.tensor_type.elem_type == TensorProto.DOUBLE
    real = torch.float64 if double else torch.float32  # what the file computes in
    ctx = GraphConverter(path, graph, _opset(path, model), converters(), real)
    shape = _bind(ctx, path, graph, inputs[0])
    ctx.run()
    return _assemble(ctx, path, graph.output[0].name, example_shape(shape))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _bind(ctx, path: Path, graph, network_input) -> tuple[int, ...]:
    """Weights as constants and the input as value 0; returns the input's ONNX shape."""
    from .onnx_convert import Const, Dyn
    from .onnx_tensors import TensorError, tensor_from_proto_raw

    for t in graph.initializer:
        try:
            ctx.values[t.name] = Const(tensor_from_proto_raw(t))
        except TensorError as err:
            raise UsageError(f"{path}: the weight tensor {t.name[:80]!r} {err}.") from None
    for t in graph.sparse_initializer:
        raise UsageError(f"{path}: the weight tensor {t.values.name!r} is sparse; save it dense.")
    shape = _input_shape(path, network_input)
    ctx.values[network_input.name] = Dyn(0, shape, ctx.real, _batch_first(shape))
    return shape


def _assemble(ctx, path: Path, output: str, per_example: tuple[int, ...]) -> nn.Module:
    """The recorded steps as one module: a Sequential for a chain, else an `OnnxNetwork`;
    a double-precision network casts its input first (callers hand float32)."""
    import torch
    from torch import nn

    from .onnx_chain import as_sequential, is_chain
    from .onnx_convert import Const, Step
    from .onnx_layers import Cast, ConstantOutput, OnnxNetwork, Reshape

    if output not in ctx.values:
        raise UsageError(f"{path}: the graph output {output!r} is never computed.")
    out = ctx.values[output]
    if isinstance(out, Const):  # an output that does not depend on the input
        value = out.tensor[0] if _batch_first(out.shape) else out.tensor
        value = value.to(ctx.real) if value.is_floating_point() else value
        ctx.steps.append(Step("output", ConstantOutput(value), (0,), tuple(value.shape)))
        ref = len(ctx.steps)
    else:
        if not out.batch_first and len(out.shape) >= 2 and out.shape[0] == 1:
            out = ctx.emit(_OutputNode(path), Reshape(out.shape[1:]), [out], True)
        ref = out.ref
    steps = ctx.steps
    if is_chain(steps, ref):
        module = as_sequential(steps, per_example, ctx.real)
    else:
        modules = nn.ModuleDict({s.name: s.module for s in steps})
        module = nn.Sequential(OnnxNetwork(modules, [s.inputs for s in steps], ref))
    if ctx.real != torch.float32:
        module.insert(0, Cast(ctx.real))
    alone = len(module) == 1 and isinstance(module[0], OnnxNetwork)
    return (module[0] if alone else module).eval()


class _OutputNode:
    """Stands for the graph's output where a step is added after the last node."""

    op = "output"
    name = "output"

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, why: str) -> UsageError:
        return UsageError(f"{self.path}: the graph output {why}.")


def load_onnx(path: str | Path, *, verify: bool = True) -> nn.Module:
    """The ONNX model at ``path`` as a torch module (eval mode), or a `UsageError` naming the
    first node that cannot be converted and why. With ``verify`` (the default) and onnxruntime
    installed, the module is compared with onnxruntime on seeded random inputs first."""
    model = read_model(path)
    module = convert_model(path, model)
    if verify and importlib.util.find_spec("onnxruntime") is not None:
        check_against_onnxruntime(path, module)
    return module


def check_against_onnxruntime(
    path: str | Path,
    module: nn.Module,
    input_shape: tuple[int, ...] | None = None,
    seed: int = 0,
    samples: int = 4,
) -> float:
    """Largest absolute difference between onnxruntime and ``module`` on seeded random inputs
    (half uniform in [0, 1], half standard normal), run through ``module`` as one batch and
    through onnxruntime one by one; raises `UsageError` when it exceeds
    float32 round-off (1e-4 relative), and when onnxruntime cannot run the file.

    ``input_shape`` is the module's per-example input shape; by default the ONNX input's shape
    less a leading batch axis of 1. Each example is fed to onnxruntime in the ONNX shape.
    """
    import numpy as np
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError(
            "checking ONNX conversions needs onnxruntime: pip install -e '.[onnx]'."
        ) from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph/... types
        raise UsageError(f"onnxruntime cannot load {path} ({first_line(err)}).") from None
    spec = session.get_inputs()[0]
    declared = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
    shape = tuple(input_shape) if input_shape is not None else example_shape(declared)
    dtype = np.float64 if "double" in spec.type else np.float32
    own = next((t.dtype for t in module.state_dict().values() if t.is_floating_point()), None)
    real = own or (torch.float64 if dtype == np.float64 else torch.float32)
    gen = torch.Generator().manual_seed(seed)
    halves = (samples + 1) // 2, samples // 2
    x = torch.cat(
        [
            torch.rand((halves[0], *shape), generator=gen),
            torch.randn((halves[1], *shape), generator=gen),
        ]
    ).to(real)
    with torch.no_grad():  # the whole batch at once: a step that mixes examples shows up
        got = np.asarray(module(x).detach().numpy())
    if got.shape[:1] != (samples,):
        raise UsageError(
            f"{path}: the converted model returns shape {list(got.shape)} for a batch of "
            f"{samples}; it is not used (please report the model)."
        )
    worst = 0.0
    for k in range(samples):
        one = x[k].numpy()
        feed = one.reshape(declared) if math.prod(declared) == one.size else one[None]
        try:
            expected = np.asarray(session.run(None, {spec.name: feed.astype(dtype)})[0])
        except Exception as err:
            raise UsageError(f"onnxruntime cannot run {path} ({first_line(err)}).") from None
        if expected.size != got[k].size:
            raise UsageError(
                f"{path}: the converted model gives {got[k].size} outputs where onnxruntime "
                f"gives {expected.size}; it is not used (please report the model)."
            )
        diff, tolerance = _mismatch(expected.reshape(got[k].shape), got[k])
        if diff > tolerance:
            raise UsageError(
                f"{path}: the converted model differs from onnxruntime by {diff:.3g}; "
                "it is not used (please report the model)."
            )
        worst = max(worst, diff)
    return worst


def _mismatch(expected, got) -> tuple[float, float]:
    """(largest absolute difference, the float32 round-off allowed): NaN matches NaN and an
    infinity matches the same infinity; any other non-finite difference is infinite."""
    import numpy as np

    e, g = expected.astype(np.float64), got.astype(np.float64)
    same = (e == g) | (np.isnan(e) & np.isnan(g))
    gap = np.nan_to_num(np.where(same, 0.0, np.abs(e - g)), nan=np.inf)
    finite = np.abs(e[np.isfinite(e)])
    scale = max(1.0, float(finite.max())) if finite.size else 1.0
    return (float(gap.max()) if gap.size else 0.0), 1e-4 * scale
