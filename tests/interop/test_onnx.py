"""ONNX in and out: our converter against onnxruntime, exports of ours and of torch's legacy
exporter, and clear refusals of what the bound engine cannot represent."""

from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from torch import nn  # noqa: E402

from threatlang.errors import UsageError  # noqa: E402
from threatlang.interop.onnx_export import export_onnx  # noqa: E402
from threatlang.interop.onnx_import import check_against_onnxruntime, load_onnx  # noqa: E402


def _cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    m = nn.Sequential(
        nn.Conv2d(1, 4, 3, 2, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(4),
        nn.Conv2d(4, 6, 2, 1, 1),
        nn.ReLU(),
        nn.AvgPool2d(2, count_include_pad=False),
        nn.Flatten(),
        nn.Linear(6, 10),
        nn.ReLU(),
        nn.Linear(10, 3),
    )
    with torch.no_grad():
        m[3].running_mean.uniform_(-0.5, 0.5)
        m[3].running_var.uniform_(0.5, 2.0)
    return m.eval()


@pytest.mark.parametrize("exporter", ["threatlang", "torch_legacy"])
def test_conversion_matches_onnxruntime_and_the_original(tmp_path, exporter):
    model, path = _cnn(), tmp_path / "m.onnx"
    if exporter == "threatlang":
        export_onnx(model, (1, 8, 8), path)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.zeros(1, 1, 8, 8),), str(path), dynamo=False)
    converted = load_onnx(path)
    assert all(not isinstance(layer, nn.Sequential) for layer in converted)
    assert check_against_onnxruntime(path, converted, (1, 8, 8), samples=8) < 1e-5
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-6)


def test_matmul_add_reshape_and_normalisation(tmp_path):
    """A hand-written graph in the style of VNN-COMP models: Sub/Div normalisation, a
    Reshape to (1, -1) with a constant shape, MatMul + Add as a dense layer."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(12, 4)).astype(np.float32), rng.normal(size=(1, 4)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.float32([0.5]), "mean"),
        numpy_helper.from_array(np.float32([0.25]), "std"),
        numpy_helper.from_array(np.int64([1, -1]), "shape"),
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(b, "B"),
    ]
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["a"]),
        helper.make_node("Div", ["a", "std"], ["c"]),
        helper.make_node("Reshape", ["c", "shape"], ["d"]),
        helper.make_node("MatMul", ["d", "W"], ["e"]),
        helper.make_node("Add", ["e", "B"], ["f"]),
        helper.make_node("Relu", ["f"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    onnx.save(model, str(tmp_path / "g.onnx"))
    converted = load_onnx(tmp_path / "g.onnx")
    # Sub and Div fuse into one depthwise 1x1 convolution: a layer every bound engine handles
    assert [type(m).__name__ for m in converted] == [
        "Conv2d",
        "Flatten",
        "Linear",
        "ReLU",
    ]
    assert check_against_onnxruntime(tmp_path / "g.onnx", converted, (3, 2, 2), samples=8) < 1e-5
    # and our exporter writes the normalisation back out faithfully
    export_onnx(converted, (3, 2, 2), tmp_path / "again.onnx")
    again = load_onnx(tmp_path / "again.onnx")
    assert check_against_onnxruntime(tmp_path / "again.onnx", again, (3, 2, 2)) < 1e-5


def test_unsupported_operator_is_named(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Sigmoid", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "s.onnx"))
    with pytest.raises(UsageError, match="operator Sigmoid is not supported"):
        load_onnx(tmp_path / "s.onnx")


def test_branching_graph_is_refused(tmp_path):
    """A residual connection is not a chain: refused, never silently flattened."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Add", ["a", "x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "r.onnx"))
    with pytest.raises(UsageError, match="chain"):
        load_onnx(tmp_path / "r.onnx")


def test_mismatch_with_onnxruntime_is_an_error(tmp_path):
    model, path = _cnn(), tmp_path / "m.onnx"
    export_onnx(model, (1, 8, 8), path)
    wrong = _cnn(seed=1)
    with pytest.raises(UsageError, match="differs from onnxruntime"):
        check_against_onnxruntime(path, wrong, (1, 8, 8))


def test_not_an_onnx_file(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(UsageError, match="not a readable ONNX model"):
        load_onnx(bad)
