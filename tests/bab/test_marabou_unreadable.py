"""A network Marabou's ONNX reader cannot read (VNN-COMP's verivital average-pool CNN has a
`Pad` node) is `unknown` with the reason, not an error that ends the run (issue 20)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("maraboupy")
pytest.importorskip("onnxruntime")

from threatlang.backends.bab.confirm import Original  # noqa: E402
from threatlang.backends.bab.problem import Problem  # noqa: E402


def _padded(path) -> str:
    """x (1, 2) -> Pad (a zero pad of width 0, as verivital's) -> Relu -> y."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    pads = numpy_helper.from_array(np.zeros(4, dtype=np.int64), "pads")
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"]), helper.make_node("Relu", ["p"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [pads],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return str(path)


def test_an_unreadable_network_is_unknown_with_the_reason(tmp_path):
    from threatlang.backends.bab.marabou import solve_marabou

    onnx = _padded(tmp_path / "pad.onnx")
    problem = Problem(
        np.array([[-1.0, 0.0]]), np.array([-5.0]), np.array([False]), np.ones((1, 1), bool)
    )
    lo, hi = np.zeros(2), np.ones(2)
    out = solve_marabou(onnx, problem, Original((2,), onnx=onnx), lo, hi, 10.0)
    assert out.verdict == "unknown"
    assert "Marabou cannot read pad.onnx" in out.reason and "Pad" in out.reason
