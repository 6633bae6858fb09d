"""Random ONNX graphs (hypothesis) through the converter: every one converts and equals
onnxruntime on a batch, whatever mix of batch-first and prepended layouts its ops force.

Graphs chain 2 to 8 ops drawn from elementwise arithmetic with broadcast constants, Transpose,
Reshape, Slice (either step sign), Gather, ReduceSum, Softmax, Concat, Unsqueeze/Squeeze,
MatMul with a constant on either side, Conv and MaxPool with asymmetric pads, and an Add joining
two earlier values (a DAG), on inputs with and without a leading axis of 1.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from threatlang.interop.onnx_import import check_against_onnxruntime, load_onnx  # noqa: E402

INPUTS = ([1, 3, 4], [2, 3], [5], [1, 2, 3, 2], [1, 6, 1])
LIMIT = 4096  # elements per tensor


class Builder:
    """Grows a graph one op at a time, tracking each value's ONNX shape."""

    def __init__(self, shape: list[int]) -> None:
        self.nodes, self.inits = [], []
        self.values = [("x", list(shape))]
        self.k = 0

    def name(self) -> str:
        self.k += 1
        return f"v{self.k}"

    def const(self, array) -> str:
        name = self.name()
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def add(self, op: str, inputs: list[str], shape: list[int], **attrs) -> None:
        out = self.name()
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        self.values.append((out, shape))

    @property
    def last(self):
        return self.values[-1]


def _step(rnd, b: Builder) -> None:
    x, shape = b.last
    rank = len(shape)
    if rank == 0:  # a scalar (a full reduction): give it an axis back
        b.add("Unsqueeze", [x, b.const(np.int64([0]))], [1])
        return
    kind = rnd.choice(
        ["unary", "const", "transpose", "reshape", "slice", "gather", "reduce", "softmax",
         "concat", "unsqueeze", "squeeze", "join", "matmul", "conv", "pool"]
    )  # fmt: skip
    if kind == "unary":
        b.add(rnd.choice(["Relu", "Tanh", "Abs", "Neg", "Sigmoid"]), [x], shape)
    elif kind == "const":
        extra = rnd.choice([[], [], [2]])
        cshape = extra + [rnd.choice([d, 1]) for d in shape]
        cshape = cshape[rnd.randint(0, len(cshape)) :]
        out = list(np.broadcast_shapes(tuple(shape), tuple(cshape)))
        if math.prod(out) > LIMIT:
            return
        c = np.random.default_rng(len(b.nodes)).normal(size=cshape).astype(np.float32)
        op = rnd.choice(["Add", "Sub", "Mul"])
        operands = [x, b.const(c)] if rnd.random() < 0.5 else [b.const(c), x]
        b.add(op, operands, out)
    elif kind == "transpose" and rank >= 2:
        perm = rnd.sample(range(rank), rank)
        b.add("Transpose", [x], [shape[p] for p in perm], perm=list(perm))
    elif kind == "reshape":
        n = math.prod(shape)
        target = rnd.choice([[n], [1, n], shape[::-1], [1, *shape], [-1, shape[-1]]])
        out = [n // shape[-1], shape[-1]] if target == [-1, shape[-1]] else list(target)
        b.add("Reshape", [x, b.const(np.int64(target))], out)
    elif kind == "slice":
        axis = rnd.randint(0, rank - 1)
        d = shape[axis]
        step = rnd.choice([1, 2, -1, -2])
        start = rnd.randint(-d - 1, d)
        end = rnd.randint(-d - 2, d + 1)
        r = _onnx_range(start, end, step, d)
        if len(r) == 0:
            return
        ins = [x, b.const(np.int64([start])), b.const(np.int64([end]))]
        ins += [b.const(np.int64([axis])), b.const(np.int64([step]))]
        b.add("Slice", ins, [*shape[:axis], len(r), *shape[axis + 1 :]])
    elif kind == "gather":
        axis = rnd.randint(0, rank - 1)
        d = shape[axis]
        idx = [rnd.randint(-d, d - 1) for _ in range(rnd.randint(1, 3))]
        scalar = len(idx) == 1 and rnd.random() < 0.5
        index = np.int64(idx[0]) if scalar else np.int64(idx)
        out = [*shape[:axis], *([] if scalar else [len(idx)]), *shape[axis + 1 :]]
        b.add("Gather", [x, b.const(index)], out, axis=axis)
    elif kind == "reduce":
        axis = rnd.randint(0, rank - 1)
        keep = rnd.random() < 0.5
        out = [1 if i == axis else s for i, s in enumerate(shape) if keep or i != axis]
        b.add("ReduceSum", [x, b.const(np.int64([axis]))], out, keepdims=int(keep))
    elif kind == "softmax":
        b.add("Softmax", [x], shape, axis=rnd.randint(-rank, rank - 1))
    elif kind == "concat":
        axis = rnd.randint(0, rank - 1)
        if 2 * math.prod(shape) <= LIMIT:
            out = [2 * s if i == axis else s for i, s in enumerate(shape)]
            b.add("Concat", [x, x], out, axis=axis)
    elif kind == "unsqueeze":
        axis = rnd.randint(0, rank)
        b.add("Unsqueeze", [x, b.const(np.int64([axis]))], [*shape[:axis], 1, *shape[axis:]])
    elif kind == "squeeze":
        ones = [i for i, s in enumerate(shape) if s == 1]
        if ones and rank > 1:
            axis = rnd.choice(ones)
            b.add("Squeeze", [x, b.const(np.int64([axis]))], shape[:axis] + shape[axis + 1 :])
    elif kind == "matmul":
        k = rnd.randint(1, 4)
        w = np.random.default_rng(len(b.nodes)).normal(size=(shape[-1], k)).astype(np.float32)
        if rank >= 2 and rnd.random() < 0.5:  # constant first: (k, rows) @ x
            c = np.random.default_rng(k).normal(size=(k, shape[-2])).astype(np.float32)
            b.add("MatMul", [b.const(c), x], [*shape[:-2], k, shape[-1]])
        else:
            b.add("MatMul", [x, b.const(w)], [*shape[:-1], k])
    elif kind in ("conv", "pool") and rank == 4 and shape[0] == 1 and min(shape[2:]) >= 2:
        pads = [rnd.randint(0, 1) for _ in range(4)]
        h, w = shape[2] + pads[0] + pads[2] - 1, shape[3] + pads[1] + pads[3] - 1
        if kind == "conv":
            weights = np.random.default_rng(3).normal(size=(2, shape[1], 2, 2)).astype(np.float32)
            b.add("Conv", [x, b.const(weights)], [1, 2, h, w], pads=pads)
        else:
            b.add("MaxPool", [x], [1, shape[1], h, w], kernel_shape=[2, 2], pads=pads)
    elif kind == "join":
        same = [name for name, s in b.values[:-1] if s == shape]
        if same:
            b.add("Add", [rnd.choice(same), x], shape)


def _onnx_range(start: int, end: int, step: int, dim: int) -> range:
    start += dim if start < 0 else 0
    end += dim if end < 0 else 0
    if step > 0:
        return range(min(max(start, 0), dim), min(max(end, 0), dim), step)
    return range(min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step)


@st.composite
def graphs(draw):
    rnd = draw(st.randoms(use_true_random=False))  # uniform choices (hypothesis favours small)
    b = Builder(rnd.choice(INPUTS))
    for _ in range(rnd.randint(2, 8)):
        _step(rnd, b)
    if len(b.values) == 1:
        b.add("Relu", ["x"], b.last[1])
    return b


def _check(tmp_path, b: Builder) -> None:
    out, shape = b.last
    graph = helper.make_graph(
        b.nodes,
        "fuzz",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, b.values[0][1])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, shape)],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)  # the graph itself is valid ONNX
    path = tmp_path / "fuzz.onnx"
    onnx.save(model, str(path))
    module = load_onnx(path)
    assert check_against_onnxruntime(path, module, samples=6, seed=1) < 1e-4


_SETTINGS = dict(
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(max_examples=30, **_SETTINGS)
@given(b=graphs())
def test_random_graphs_convert_and_match_onnxruntime(tmp_path, b):
    _check(tmp_path, b)


@pytest.mark.slow
@settings(max_examples=400, **_SETTINGS)
@given(b=graphs())
def test_many_random_graphs_convert_and_match_onnxruntime(tmp_path, b):
    _check(tmp_path, b)
