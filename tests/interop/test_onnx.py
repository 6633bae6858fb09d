"""ONNX in and out: our converter against onnxruntime, exports of ours and of torch's legacy
exporter, and one-sentence refusals of hostile or unconvertible files (issues 19, 20, 21)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
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


def _save(tmp_path, nodes, shape=(1, 4), inits=None, name="m", opset=17, elem=TensorProto.FLOAT):
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", elem, None if shape is None else list(shape))],
        [helper.make_tensor_value_info("y", elem, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _one_sentence(err: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- conversions -----------------------------------------------------------------------------
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
    assert isinstance(converted, nn.Sequential)
    assert all(not isinstance(layer, nn.Sequential) for layer in converted)
    assert check_against_onnxruntime(path, converted, (1, 8, 8), samples=8) < 1e-5
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-6)


def test_matmul_add_reshape_and_normalisation(tmp_path):
    """A hand-written graph in the style of VNN-COMP models: Sub/Div normalisation, a
    Reshape to (1, -1) with a constant shape, MatMul + Add as a dense layer."""
    rng = np.random.default_rng(0)
    inits = {
        "mean": np.float32([0.5]),
        "std": np.float32([0.25]),
        "shape": np.int64([1, -1]),
        "W": rng.normal(size=(12, 4)).astype(np.float32),
        "B": rng.normal(size=(1, 4)).astype(np.float32),
    }
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["a"]),
        helper.make_node("Div", ["a", "std"], ["c"]),
        helper.make_node("Reshape", ["c", "shape"], ["d"]),
        helper.make_node("MatMul", ["d", "W"], ["e"]),
        helper.make_node("Add", ["e", "B"], ["f"]),
        helper.make_node("Relu", ["f"], ["y"]),
    ]
    path = _save(tmp_path, nodes, (1, 3, 2, 2), inits, name="g")
    converted = load_onnx(path)
    # Sub and Div fuse into one depthwise 1x1 convolution: a layer every bound engine handles
    assert [type(m).__name__ for m in converted] == ["Conv2d", "Flatten", "Linear", "ReLU"]
    assert check_against_onnxruntime(path, converted, (3, 2, 2), samples=8) < 1e-5
    # and our exporter writes the normalisation back out faithfully
    export_onnx(converted, (3, 2, 2), tmp_path / "again.onnx")
    again = load_onnx(tmp_path / "again.onnx")
    assert check_against_onnxruntime(tmp_path / "again.onnx", again, (3, 2, 2)) < 1e-5


def test_a_784_by_1_input_and_a_rank_1_input_convert(tmp_path):
    """The shapes issue 20 met as "Invalid rank": the module takes (N, 784, 1) and (N, 5)."""
    w = np.random.default_rng(1).normal(size=(3, 784)).astype(np.float32)
    path = _save(
        tmp_path,
        [
            helper.make_node("Flatten", ["x"], ["f"]),
            helper.make_node("Gemm", ["f", "W"], ["y"], transB=1),
        ],
        (1, 784, 1),
        {"W": w},
    )
    model = load_onnx(path)
    assert model(torch.rand(2, 784, 1)).shape == (2, 3)
    path = _save(tmp_path, [helper.make_node("Sigmoid", ["x"], ["y"])], (5,), name="r1")
    assert load_onnx(path)(torch.rand(4, 5)).shape == (4, 5)


def test_a_double_network_is_converted_in_double(tmp_path):
    """Issue 20's nn4sys networks compute in float64; in float32 their outputs vanish."""
    nodes = [
        helper.make_node("Add", ["x", "big"], ["a"]),
        helper.make_node("Relu", ["a"], ["r"]),
        helper.make_node("Sub", ["r", "big"], ["y"]),
    ]
    path = _save(tmp_path, nodes, (1, 3), {"big": np.float64([1e8])}, elem=TensorProto.DOUBLE)
    model = load_onnx(path)  # checked against onnxruntime in float64
    x = torch.rand(2, 3)  # callers hand float32; the module computes as the file does
    torch.testing.assert_close(model(x), x.double())


def test_residual_graph_is_converted_not_refused(tmp_path):
    """A skip connection is a DAG: converted, and it equals onnxruntime."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Add", ["a", "x"], ["y"])]
    path = _save(tmp_path, nodes)
    model = load_onnx(path)
    x = torch.randn(3, 4)
    torch.testing.assert_close(model(x), torch.relu(x) + x)


def test_mismatch_with_onnxruntime_is_an_error(tmp_path):
    model, path = _cnn(), tmp_path / "m.onnx"
    export_onnx(model, (1, 8, 8), path)
    wrong = _cnn(seed=1)
    with pytest.raises(UsageError, match="differs from onnxruntime"):
        check_against_onnxruntime(path, wrong, (1, 8, 8))


def test_a_module_that_mixes_the_batch_is_caught(tmp_path):
    """Each example through onnxruntime alone, the module on the batch: mixing shows up."""
    model, path = _cnn(), tmp_path / "m.onnx"
    export_onnx(model, (1, 8, 8), path)

    class Mixer(nn.Module):
        def forward(self, x):
            return model(x) + 1e-2 * model(x).mean(0, keepdim=True)

    with pytest.raises(UsageError, match="differs from onnxruntime"):
        check_against_onnxruntime(path, Mixer(), (1, 8, 8))


# --- refusals: one sentence, naming the node and the operator ---------------------------------
def test_names_from_the_file_cannot_break_the_one_line_message(tmp_path):
    node = helper.make_node("Foo\nBar" * 50, ["x"], ["y"], name="a\nb" * 100)
    path = _save(tmp_path, [node])
    with pytest.raises(UsageError) as err:
        load_onnx(path, verify=False)
    assert len(_one_sentence(err, "does not convert")) < 500


def test_unknown_operator_is_named(tmp_path):
    path = _save(tmp_path, [helper.make_node("FooBar", ["x"], ["y"], name="mystery")])
    with pytest.raises(UsageError) as err:
        load_onnx(path, verify=False)
    _one_sentence(err, str(path), "'mystery'", "(FooBar)", "does not convert")


@pytest.mark.parametrize("verify", [True, False])
def test_a_vendor_domain_op_is_refused_even_when_it_shares_a_standard_name(tmp_path, verify):
    """Issue 19's seventh hole: com.vendor:Relu is not Relu, whether or not onnxruntime runs."""
    node = helper.make_node("Relu", ["x"], ["y"], name="r", domain="com.vendor")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.vendor", 1)],
    )
    onnx.save(model, str(tmp_path / "v.onnx"))
    with pytest.raises(UsageError) as err:
        load_onnx(tmp_path / "v.onnx", verify=verify)
    _one_sentence(err, "'r' (Relu)", "com.vendor", "not the standard")


def test_vendor_domain_is_refused_without_onnxruntime(tmp_path, monkeypatch):
    """The same refusal where onnxruntime is not installed (no check against it can run)."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    node = helper.make_node("Relu", ["x"], ["y"], name="r", domain="com.vendor")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "v.onnx"))
    with pytest.raises(UsageError) as err:
        load_onnx(tmp_path / "v.onnx")
    _one_sentence(err, "'r' (Relu)", "com.vendor")


HOSTILE = {
    "random values": (
        [helper.make_node("RandomNormalLike", ["x"], ["y"])],
        (1, 4),
        {},
        ("(RandomNormalLike)", "random"),
    ),
    "control flow": (
        [helper.make_node("Loop", ["", "", "x"], ["y"], name="loop")],
        (1, 4),
        {},
        ("'loop' (Loop)", "subgraph"),
    ),
    "a shape taken from the input's values": (
        [
            helper.make_node("Cast", ["x"], ["s"], to=TensorProto.INT64),
            helper.make_node("Reshape", ["x", "s"], ["y"], name="rs"),
        ],
        (1, 2),
        {},
        ("'rs' (Reshape)", "network's input values"),
    ),
    "a constant of 10^12 elements": (
        [
            helper.make_node("ConstantOfShape", ["big"], ["c"], name="cos"),
            helper.make_node("Add", ["x", "c"], ["y"]),
        ],
        (1, 4),
        {"big": np.int64([1000000, 1000000])},
        ("'cos' (ConstantOfShape)", "1,000,000,000,000 elements", "smaller shapes"),
    ),
    "an Expand to 10^12 elements": (
        [helper.make_node("Expand", ["x", "big"], ["y"], name="ex")],
        (1, 4),
        {"big": np.int64([1000000, 1000000, 4])},
        ("'ex' (Expand)", "elements", "smaller shapes"),
    ),
    "a broadcast to 10^12 elements": (
        [helper.make_node("Add", ["x", "col"], ["y"], name="bc")],
        (1, 1000000),
        {"col": np.zeros((1000000, 1), np.float32)},
        ("'bc' (Add)", "elements", "smaller shapes"),
    ),
    "a huge input": (
        [helper.make_node("Relu", ["x"], ["y"])],
        (1, 1000000, 1000000),
        {},
        ("input 'x'", "1,000,000,000,000 elements", "smaller input"),
    ),
    "a negative input dimension": (
        [helper.make_node("Relu", ["x"], ["y"])],
        (1, -4),
        {},
        ("input 'x'", "negative dimension"),
    ),
    "an unfixed input dimension": (
        [helper.make_node("Relu", ["x"], ["y"])],
        (1, "width"),
        {},
        ("dimension 1", "not fixed", "static input shape"),
    ),
    "an index out of range": (
        [helper.make_node("Gather", ["x", "i"], ["y"], axis=1, name="g")],
        (1, 4),
        {"i": np.int64([7])},
        ("'g' (Gather)", "outside an axis of size 4"),
    ),
    "a Div by zero": (
        [helper.make_node("Div", ["x", "z"], ["y"], name="d")],
        (1, 4),
        {"z": np.float32([1, 0, 1, 1])},
        ("'d' (Div)", "Div by a constant with zeros"),
    ),
    "a node reading a value never computed": (
        [helper.make_node("Add", ["x", "ghost"], ["y"], name="a")],
        (1, 4),
        {},
        ("'a' (Add)", "'ghost'", "topological order"),
    ),
    "mismatched broadcast": (
        [helper.make_node("Add", ["x", "c"], ["y"], name="a")],
        (1, 4),
        {"c": np.zeros(3, np.float32)},
        ("'a' (Add)", "cannot broadcast"),
    ),
    "dropout that stays on": (
        [helper.make_node("Dropout", ["x", "r", "t"], ["y"], name="dr")],
        (1, 4),
        {"r": np.float32(0.5), "t": np.bool_(True)},
        ("'dr' (Dropout)", "training mode"),
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_or_unconvertible_graph_is_one_sentence(tmp_path, case):
    nodes, shape, inits, fragments = HOSTILE[case]
    path = _save(tmp_path, nodes, shape, inits)
    with pytest.raises(UsageError) as err:
        load_onnx(path)
    _one_sentence(err, str(path), *fragments)


def _raw_tensor(name: str, dims, data: bytes):
    """A float tensor whose declared dims need not fit its bytes (helper.make_tensor checks)."""
    t = TensorProto()
    t.name, t.data_type, t.raw_data = name, TensorProto.FLOAT, data
    t.dims.extend(dims)
    return t


def _bare_graph(tmp_path, initializer) -> str:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", initializer.name], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [initializer],
    )
    path = tmp_path / "t.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())  # onnx.save would check
    return path


def test_a_weight_claiming_10_to_the_12_elements_is_refused_before_decoding(tmp_path):
    big = _raw_tensor("w", [1000000, 1000000], b"\x00" * 16)
    with pytest.raises(UsageError) as err:
        load_onnx(_bare_graph(tmp_path, big))
    _one_sentence(err, "'w'", "1,000,000,000,000 elements")


def test_external_weight_data_is_never_read(tmp_path):
    """A weight whose data is 'stored' at a path the file names (here /etc/passwd)."""
    w = _raw_tensor("w", [4], b"")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "../../../../etc/passwd"
    with pytest.raises(UsageError) as err:
        load_onnx(_bare_graph(tmp_path, w))
    message = _one_sentence(err, "'w'", "external file")
    assert "root:" not in message


def test_inconsistent_weight_data_is_refused(tmp_path):
    w = _raw_tensor("w", [4], b"\x00" * 3)
    with pytest.raises(UsageError) as err:
        load_onnx(_bare_graph(tmp_path, w))
    _one_sentence(err, "'w'", "cannot be decoded")


@pytest.mark.parametrize(
    "content", [b"", b"not a model", b"\x00garbage" * 10, bytes(range(256)) * 40]
)
def test_not_an_onnx_file(tmp_path, content):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(content)
    with pytest.raises(UsageError) as err:
        load_onnx(bad)
    _one_sentence(err, "not a valid ONNX model", str(bad))


def test_the_input_shape_is_read_without_raw_errors(tmp_path):
    from threatlang.interop.onnx_import import example_shape, network_input_shape

    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], (1, 784, 1))
    assert network_input_shape(path) == (1, 784, 1)
    assert example_shape(network_input_shape(path)) == (784, 1)
    assert example_shape((5,)) == (5,)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UsageError) as err:
        network_input_shape(bad)
    _one_sentence(err, "not a valid ONNX model")


def test_integer_input_two_inputs_and_two_outputs_are_refused(tmp_path):
    path = _save(tmp_path, [helper.make_node("Relu", ["x"], ["y"])], elem=TensorProto.INT64)
    with pytest.raises(UsageError) as err:
        load_onnx(path)
    _one_sentence(err, "element type INT64", "float or double")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "z"], ["y"]), helper.make_node("Relu", ["x"], ["w"])],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [1, 4]),
        ],
    )
    onnx.save(helper.make_model(graph), str(tmp_path / "two.onnx"))
    with pytest.raises(UsageError) as err:
        load_onnx(tmp_path / "two.onnx")
    _one_sentence(err, "2 inputs")


def test_cli_run_on_a_hostile_onnx_exits_2_with_one_line(tmp_path, capsys):
    from threatlang.cli import main

    path = _save(
        tmp_path,
        [
            helper.make_node("ConstantOfShape", ["big"], ["c"], name="cos"),
            helper.make_node("Add", ["x", "c"], ["y"]),
        ],
        (1, 2),
        {"big": np.int64([1000000, 1000000, 2])},
    )
    spec = tmp_path / "s.threat"
    spec.write_text(
        "threatlang 1\nspec s {\n"
        f'  model onnx("{path}")\n'
        "  threat box {\n    bounds [(-1, 1), (-1, 1)]\n  }\n"
        '  require outputs {\n    linear "y[0] - y[1] <= 10"\n  }\n'
        "  certify bab { time_limit 5s }\n}\n"
    )
    code = main(["run", str(spec), "--output", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "'cos' (ConstantOfShape)" in err and "Traceback" not in err, err


def test_importing_the_front_end_loads_neither_torch_nor_onnx():
    code = (
        "import sys\nimport threatlang.interop.onnx_import\n"
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
