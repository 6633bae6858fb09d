"""ONNX → torch for the operators the bound engine understands, over the `onnx` package alone.

The graph must be a chain (each node consumes the previous node's output plus constants), and
becomes an `nn.Sequential` of plain torch layers, so every backend sees a network it can bound.
Add/Sub/Mul/Div by constants (input normalisation) become affine layers: folded into the
preceding Linear, else a diagonal Linear (flat data) or a depthwise 1x1 Conv2d (per-channel
constants on images). Anything else is refused by name, never approximated. `check_against_onnxruntime` runs both on
random inputs and raises if they disagree.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import UsageError

SUPPORTED = (
    "Gemm, MatMul(+Add), Add of a constant, Sub/Div by constants, Conv, Relu, Flatten, "
    "Reshape to (batch, -1), AveragePool, MaxPool, BatchNormalization, Identity, Dropout"
)


def _onnx():
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        raise UsageError("ONNX models need the onnx package: pip install -e '.[onnx]'.") from None
    return onnx, numpy_helper


def load_onnx(path: str | Path) -> nn.Sequential:
    """The ONNX model at `path` as an `nn.Sequential` (eval mode), or a `UsageError` naming the
    first operator or graph shape it cannot convert."""
    onnx, numpy_helper = _onnx()
    try:
        model = onnx.load(str(path))
    except Exception as err:  # a truncated or non-ONNX file
        raise UsageError(f"{path} is not a readable ONNX model: {err}") from None
    graph = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise UsageError(f"{path}: only single-input, single-output ONNX models are supported.")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim]
    rank = len(dims) or 4
    current, layers = inputs[0].name, []
    affine = _Affine(tuple(dims[1:]), path)
    nodes = list(graph.node)
    i = 0
    while i < len(nodes):
        node = nodes[i]
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
            i += 1
            continue
        data = [n for n in node.input if n and n not in consts]
        if data != [current]:
            raise UsageError(
                f"{path}: node {node.name or node.op_type} ({node.op_type}) does not continue a "
                "chain of layers; only sequential networks are supported."
            )
        nxt = nodes[i + 1] if i + 1 < len(nodes) else None
        if node.op_type in ("Add", "Sub", "Div", "Mul"):
            affine.add(node, consts, layers)
            current = node.output[0]
            i += 1
            continue
        rank = affine.flush(layers, rank)
        layer, fused = _convert(node, nxt, consts, rank, path)
        if layer is not None:
            layers.append(layer)
            rank = _rank_after(layer, rank)
        current = (nxt if fused else node).output[0]
        i += 2 if fused else 1
    affine.flush(layers, rank)
    if current != graph.output[0].name:
        raise UsageError(f"{path}: the graph output is not the end of the layer chain.")
    return nn.Sequential(*layers).eval()


class _Affine:
    """Consecutive Add/Sub/Mul/Div by constants, kept as `y = a * x + b` (per element) until a
    real layer comes, then emitted as layers the bound engines handle."""

    def __init__(self, input_shape: tuple[int, ...], path) -> None:
        self.input_shape, self.path = input_shape, path
        self.a: torch.Tensor | None = None
        self.b: torch.Tensor | None = None

    def _shape(self, layers) -> tuple[int, ...]:
        if not self.input_shape or not all(d > 0 for d in self.input_shape):
            raise UsageError(
                f"{self.path}: the input shape is not static, so constant Add/Sub/Mul/Div "
                "cannot be turned into layers; export the model with a fixed input shape."
            )
        with torch.no_grad():
            x = torch.zeros(1, *self.input_shape)
            return tuple(nn.Sequential(*layers).eval()(x).shape[1:])

    def add(self, node, consts, layers) -> None:
        const = [n for n in node.input if n in consts]
        op = node.op_type
        if len(const) != 1 or (node.input[0] in consts and op in ("Sub", "Div")):
            raise UsageError(f"{self.path}: {op} needs the data first and one constant.")
        if self.a is None:
            shape = self._shape(layers)
            self.a, self.b = (
                torch.ones(shape, dtype=torch.float64),
                torch.zeros(shape, dtype=torch.float64),
            )
        c = torch.from_numpy(np.asarray(consts[const[0]], dtype=np.float64))
        while c.dim() > self.a.dim() and c.shape[0] == 1:
            c = c[0]  # a leading batch dimension of 1
        try:
            c = torch.broadcast_to(c, self.a.shape)
        except RuntimeError:
            raise UsageError(
                f"{self.path}: {op} by a constant of shape {tuple(c.shape)} does not fit the "
                f"data of shape {tuple(self.a.shape)}."
            ) from None
        if op == "Div" and bool((c == 0).any()):
            raise UsageError(f"{self.path}: Div by a constant with zeros.")
        if op in ("Add", "Sub"):
            self.b = self.b + c if op == "Add" else self.b - c
        else:
            factor = c if op == "Mul" else 1.0 / c
            self.a, self.b = self.a * factor, self.b * factor

    def flush(self, layers: list, rank: int) -> int:
        """Emit the pending map as layers; returns the data's rank afterwards."""
        if self.a is None:
            return rank
        a, b = self.a, self.b
        self.a = self.b = None
        if a.dim() == 1 and layers and isinstance(layers[-1], nn.Linear):
            last = layers[-1]
            with torch.no_grad():
                bias = last.bias.double() if last.bias is not None else torch.zeros_like(a)
                layers[-1] = _linear(
                    (a[:, None] * last.weight.double()).numpy(), (a * bias + b).numpy()
                )
            return rank
        if a.dim() == 1:
            layers.append(_linear(torch.diag(a).numpy(), b.numpy()))
            return rank
        per_channel = a.dim() == 3 and all(bool((t == t[:, :1, :1]).all()) for t in (a, b))
        if per_channel:
            channels = a.shape[0]
            conv = nn.Conv2d(channels, channels, 1, groups=channels)
            with torch.no_grad():
                conv.weight.copy_(a[:, 0, 0].reshape(channels, 1, 1, 1))
                conv.bias.copy_(b[:, 0, 0])
            layers.append(conv)
            return rank
        layers.append(nn.Flatten())  # per-element constants on images: act on the flat data
        layers.append(_linear(torch.diag(a.flatten()).numpy(), b.flatten().numpy()))
        return 2


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _t(array) -> torch.Tensor:
    return torch.from_numpy(np.array(array, dtype=np.float32, copy=True))


def _convert(node, nxt, consts, rank, path):
    """(torch layer or None for a no-op, whether `nxt` was fused into it)."""
    op, a = node.op_type, _attrs(node)
    if op in ("Identity", "Dropout"):
        return None, False
    if op == "Relu":
        return nn.ReLU(), False
    if op == "Gemm":
        w, b = consts[node.input[1]], consts.get(node.input[2]) if len(node.input) > 2 else None
        if a.get("transA", 0):
            raise UsageError(f"{path}: Gemm with transA is not supported.")
        w = w if a.get("transB", 0) else w.T
        w = w * a.get("alpha", 1.0)
        b = None if b is None else _bias(b * a.get("beta", 1.0), w.shape[0])
        return _linear(w, b), False
    if op == "MatMul":
        w = consts[node.input[1]].T
        fuse = nxt is not None and nxt.op_type == "Add" and node.output[0] in nxt.input
        b = None
        if fuse:
            other = [n for n in nxt.input if n != node.output[0]]
            b = consts.get(other[0]) if other else None
            fuse = b is not None
        return _linear(w, None if b is None else _bias(b, w.shape[0])), fuse
    if op == "Flatten":
        if a.get("axis", 1) != 1:
            raise UsageError(f"{path}: Flatten with axis {a['axis']} is not supported.")
        return nn.Flatten(), False
    if op == "Reshape":
        shape = [int(v) for v in consts[node.input[1]]]
        if len(shape) != 2 or shape[0] not in (1, -1, 0):
            raise UsageError(f"{path}: Reshape to {shape} is not supported (only to (batch, -1)).")
        return nn.Flatten(), False
    if op == "Conv":
        if rank != 4:
            raise UsageError(
                f"{path}: Conv after per-element constants on a flat tensor is not supported."
            )
        return _conv(node, a, consts, path), False
    if op in ("AveragePool", "MaxPool"):
        return _pool(op, a, path), False
    if op == "BatchNormalization":
        scale, bias, mean, var = (consts[n] for n in node.input[1:5])
        bn = (nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d)(
            len(scale), eps=a.get("epsilon", 1e-5)
        )
        with torch.no_grad():
            bn.weight.copy_(_t(scale))
            bn.bias.copy_(_t(bias))
            bn.running_mean.copy_(_t(mean))
            bn.running_var.copy_(_t(var))
        return bn.eval(), False
    raise UsageError(f"{path}: ONNX operator {op} is not supported (supported: {SUPPORTED}).")


def _bias(b, n: int) -> np.ndarray:
    """A bias of shape (), (n,), (1, n) or (n, 1)... as (n,)."""
    b = np.asarray(b)
    return np.broadcast_to(b.reshape(-1) if b.size == n else b.reshape(()), (n,))


def _linear(w, b) -> nn.Linear:
    layer = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        layer.weight.copy_(_t(w))
        if b is not None:
            layer.bias.copy_(_t(b))
    return layer


def _sym_pads(pads, path, op) -> tuple[int, ...]:
    k = len(pads) // 2
    if list(pads[:k]) != list(pads[k:]):
        raise UsageError(f"{path}: {op} with asymmetric padding {list(pads)} is not supported.")
    return tuple(int(p) for p in pads[:k])


def _conv(node, a, consts, path) -> nn.Conv2d:
    w = consts[node.input[1]]
    b = consts.get(node.input[2]) if len(node.input) > 2 else None
    if w.ndim != 4:
        raise UsageError(f"{path}: only 2-D Conv is supported, got a {w.ndim - 2}-D kernel.")
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise UsageError(f"{path}: Conv with auto_pad is not supported; export with explicit pads.")
    group = a.get("group", 1)
    conv = nn.Conv2d(
        w.shape[1] * group,
        w.shape[0],
        tuple(w.shape[2:]),
        stride=tuple(a.get("strides", (1, 1))),
        padding=_sym_pads(a.get("pads", (0, 0, 0, 0)), path, "Conv"),
        dilation=tuple(a.get("dilations", (1, 1))),
        groups=group,
        bias=b is not None,
    )
    with torch.no_grad():
        conv.weight.copy_(_t(w))
        if b is not None:
            conv.bias.copy_(_t(b))
    return conv


def _pool(op, a, path) -> nn.Module:
    kernel = tuple(a["kernel_shape"])
    stride = tuple(a.get("strides", kernel))
    padding = _sym_pads(a.get("pads", (0,) * 2 * len(kernel)), path, op)
    if a.get("ceil_mode", 0):
        raise UsageError(f"{path}: {op} with ceil_mode is not supported.")
    if op == "MaxPool":
        return nn.MaxPool2d(kernel, stride, padding)
    return nn.AvgPool2d(
        kernel, stride, padding, count_include_pad=bool(a.get("count_include_pad", 0))
    )


def _rank_after(layer: nn.Module, rank: int) -> int:
    return 2 if isinstance(layer, nn.Flatten | nn.Linear) else rank


def check_against_onnxruntime(
    path: str | Path,
    module: nn.Module,
    input_shape: tuple[int, ...],
    seed: int = 0,
    samples: int = 4,
) -> float:
    """Largest absolute difference between onnxruntime and `module` on seeded random inputs in
    [0, 1]; raises `UsageError` when it exceeds float32 round-off (1e-4 relative)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError(
            "checking ONNX conversions needs onnxruntime: pip install -e '.[onnx]'."
        ) from None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    gen = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(samples):
        x = torch.rand((1, *input_shape), generator=gen)
        expected = session.run(None, {name: x.numpy()})[0]
        with torch.no_grad():
            got = module(x).numpy()
        diff = float(np.abs(expected - got).max())
        if diff > 1e-4 * max(1.0, float(np.abs(expected).max())):
            raise UsageError(
                f"{path}: the converted model differs from onnxruntime by {diff:.3g}; "
                "it is not used (please report the model)."
            )
        worst = max(worst, diff)
    return worst
