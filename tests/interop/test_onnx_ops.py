"""Every ONNX operator family the front end converts, on small graphs built with `onnx.helper`,
against onnxruntime: the converted module must agree on random inputs run as one batch (so a
step that mixes examples fails), and data-independent subgraphs must be folded away."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

from threatlang.interop.onnx_common import SUPPORTED  # noqa: E402
from threatlang.interop.onnx_import import (  # noqa: E402
    check_against_onnxruntime,
    converters,
    load_onnx,
)

RNG = np.random.default_rng(0)


def _w(*shape) -> np.ndarray:
    return RNG.normal(size=shape).astype(np.float32)


def build(tmp_path, nodes, shape, inits=None, opset=17, name="g"):
    """Save a graph reading input ``x`` of ``shape`` and writing ``y``; return its path."""
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (inits or {}).items()]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8 if opset <= 17 else 9
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def converted(path, samples: int = 8):
    """The module (checked against onnxruntime at load), checked again on more samples."""
    module = load_onnx(path)
    assert check_against_onnxruntime(path, module, samples=samples, seed=3) < 1e-4
    return module


def _step_types(module) -> list[str]:
    children = module.steps.values() if hasattr(module, "steps") else module
    return [type(m).__name__ for m in children]


N = helper.make_node

CASES = {
    "gemm_alpha_beta_transB": (
        [N("Gemm", ["x", "W", "C"], ["y"], transB=1, alpha=0.5, beta=2.0)],
        [1, 6],
        {"W": _w(4, 6), "C": _w(4)},
    ),
    "gemm_transA_on_a_column": (
        [N("Gemm", ["x", "W"], ["h"], transA=1), N("Relu", ["h"], ["y"])],
        [6, 1],
        {"W": _w(6, 3)},
    ),
    "gemm_full_bias_matrix": (
        [N("Gemm", ["x", "W", "C"], ["y"])],
        [2, 3],
        {"W": _w(3, 4), "C": _w(2, 4)},
    ),
    "matmul_rank1_input": (
        [N("MatMul", ["x", "W"], ["h"]), N("Add", ["h", "B"], ["y"])],
        [6],
        {"W": _w(6, 3), "B": _w(3)},
    ),
    "matmul_constant_first_784_1_style": (
        [
            N("MatMul", ["W", "x"], ["h"]),
            N("Relu", ["h"], ["r"]),
            N("Reshape", ["r", "s"], ["f"]),
            N("Gemm", ["f", "V"], ["y"], transB=1),
        ],
        [1, 8, 1],
        {"W": _w(5, 8), "s": np.int64([1, -1]), "V": _w(3, 5)},
    ),
    "matmul_batched_broadcast": (
        [N("MatMul", ["x", "W"], ["y"])],
        [3, 4],
        {"W": _w(2, 4, 5)},
    ),
    "matmul_vector_weights": (
        [N("MatMul", ["x", "W"], ["y"])],
        [1, 2, 4],
        {"W": _w(4)},
    ),
    "matmul_of_two_computed_tensors": (
        [N("Transpose", ["x"], ["t"]), N("MatMul", ["t", "x"], ["y"])],
        [1, 4],
        {},
    ),
    "conv_grouped_strided_dilated_asymmetric_pads": (
        [
            N(
                "Conv",
                ["x", "W", "B"],
                ["y"],
                group=2,
                strides=[2, 1],
                dilations=[1, 2],
                pads=[1, 0, 2, 1],
            )
        ],
        [1, 4, 9, 9],
        {"W": _w(6, 2, 3, 3), "B": _w(6)},
    ),
    "conv_same_upper_then_relu": (
        [
            N("Conv", ["x", "W"], ["h"], auto_pad="SAME_UPPER", strides=[2, 2]),
            N("Relu", ["h"], ["y"]),
        ],
        [1, 2, 7, 6],
        {"W": _w(3, 2, 4, 3)},
    ),
    "conv_1d": (
        [N("Conv", ["x", "W", "B"], ["y"], strides=[2], pads=[1, 1], dilations=[2])],
        [1, 2, 11],
        {"W": _w(3, 2, 3), "B": _w(3)},
    ),
    "conv_transpose_output_padding": (
        [
            N(
                "ConvTranspose",
                ["x", "W", "B"],
                ["y"],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                output_padding=[1, 1],
            )
        ],
        [1, 3, 4, 5],
        {"W": _w(3, 4, 3, 3), "B": _w(4)},
    ),
    "conv_transpose_grouped_asymmetric": (
        [N("ConvTranspose", ["x", "W"], ["y"], strides=[2, 3], pads=[0, 1, 2, 0], group=3)],
        [1, 3, 4, 4],
        {"W": _w(3, 2, 3, 3)},
    ),
    "conv_transpose_output_shape": (
        [N("ConvTranspose", ["x", "W"], ["y"], strides=[2, 2], output_shape=[9, 10])],
        [1, 2, 4, 5],
        {"W": _w(2, 2, 3, 3)},
    ),
    "activations": (
        [
            N("LeakyRelu", ["x"], ["a"], alpha=0.1),
            N("Sigmoid", ["a"], ["b"]),
            N("Tanh", ["x"], ["c"]),
            N("Abs", ["x"], ["d"]),
            N("Neg", ["d"], ["e"]),
            N("Clip", ["e", "lo", "hi"], ["f"]),
            N("Sign", ["x"], ["g"]),
            N("Elu", ["x"], ["h"], alpha=0.7),
            N("Softplus", ["x"], ["i"]),
            N("HardSigmoid", ["x"], ["j"], alpha=0.3, beta=0.4),
            N("PRelu", ["x", "slope"], ["k"]),
            N("Sum", ["b", "c", "f", "g", "h", "i", "j", "k"], ["s"]),
            N("Softmax", ["s"], ["y"], axis=1),
        ],
        [1, 3, 4],
        {"lo": np.float32(-0.5), "hi": np.float32(0.25), "slope": _w(3, 1)},
    ),
    "more_activations": (
        [
            N("Softsign", ["x"], ["a"]),
            N("HardSwish", ["x"], ["b"]),
            N("Abs", ["x"], ["c"]),
            N("Celu", ["x"], ["d"], alpha=0.5),
            N("Selu", ["x"], ["e"]),
            N("ThresholdedRelu", ["x"], ["f"], alpha=0.3),
            N("Sum", ["a", "b", "c", "d", "e", "f"], ["y"]),
        ],
        [1, 6],
        {},
    ),
    "einsum_with_constants_and_two_computed_operands": (
        [
            N("Einsum", ["x", "W"], ["a"], equation="bij,jk->bik"),
            N("Einsum", ["a", "x"], ["y"], equation="bik,bij->bkj"),
        ],
        [1, 3, 4],
        {"W": _w(4, 2)},
    ),
    "arithmetic_broadcasting": (
        [
            N("Add", ["x", "c4"], ["a"]),
            N("Sub", ["c31", "a"], ["b"]),
            N("Mul", ["b", "x"], ["m"]),
            N("Div", ["m", "two"], ["d"]),
            N("Pow", ["d", "two"], ["p"]),
            N("Min", ["p", "x"], ["q"]),
            N("Max", ["q", "c4"], ["r"]),
            N("Mean", ["r", "x", "c31"], ["y"]),
        ],
        [1, 3, 4],
        {"c4": _w(4), "c31": _w(3, 1), "two": np.float32(2.0)},
    ),
    "broadcast_beyond_the_input_rank": (
        [N("Add", ["x", "c"], ["y"])],
        [4],
        {"c": _w(3, 1, 4)},
    ),
    "constant_only_math_folds": (
        [
            N("Sqrt", ["c"], ["s"]),
            N("Exp", ["s"], ["e"]),
            N("Log", ["e"], ["l"]),
            N("Mul", ["x", "l"], ["y"]),
        ],
        [1, 4],
        {"c": np.float32([1, 4, 9, 16])},
    ),
    "reshape_flatten_transpose_squeeze_unsqueeze": (
        [
            N("Transpose", ["x"], ["t"], perm=[0, 2, 1]),
            N("Unsqueeze", ["t", "ax0"], ["u"]),
            N("Squeeze", ["u", "ax0"], ["v"]),
            N("Reshape", ["v", "shape"], ["r"]),
            N("Transpose", ["r"], ["t2"], perm=[2, 1, 0]),
            N("Flatten", ["t2"], ["y"], axis=2),
        ],
        [1, 3, 4],
        {"ax0": np.int64([0]), "shape": np.int64([3, 0, -1])},
    ),
    "concat_split_slice_gather": (
        [
            N("Concat", ["x", "c"], ["k"], axis=2),
            N("Split", ["k", "parts"], ["s0", "s1", "s2"], axis=2),
            N("Slice", ["s1", "st", "en", "axes", "steps"], ["sl"]),
            N("Gather", ["s0", "idx"], ["g"], axis=1),
            N("Flatten", ["g"], ["gf"]),
            N("Flatten", ["sl"], ["sf"]),
            N("Flatten", ["s2"], ["s2f"]),
            N("Concat", ["gf", "sf", "s2f"], ["y"], axis=1),
        ],
        [1, 3, 4],
        {
            "c": _w(1, 3, 2),
            "parts": np.int64([2, 3, 1]),
            "st": np.int64([-1, 2]),
            "en": np.int64([-100, 0]),
            "axes": np.int64([2, 1]),
            "steps": np.int64([-1, -2]),
            "idx": np.int64([[2, 0], [-1, 1]]),
        },
    ),
    "gather_scalar_and_strided_indices": (
        [
            N("Gather", ["x", "last"], ["a"], axis=2),
            N("Gather", ["x", "odd"], ["b"], axis=2),
            N("Gather", ["x", "first"], ["c"], axis=1),
            N("Flatten", ["b"], ["bf"]),
            N("Flatten", ["c"], ["cf"]),
            N("Concat", ["a", "bf", "cf"], ["y"], axis=1),
        ],
        [1, 3, 4],
        {"last": np.int64(-1), "odd": np.int64([1, 3]), "first": np.int64([0])},
    ),
    "reductions": (
        [
            N("ReduceSum", ["x", "axes"], ["a"], keepdims=1),
            N("ReduceMean", ["x"], ["b"], axes=[1], keepdims=0),
            N("ReduceMax", ["x"], ["c"], axes=[2], keepdims=1),
            N("ReduceMin", ["x"], ["d"], axes=[1, 2], keepdims=1),
            N("Flatten", ["a"], ["af"]),
            N("Flatten", ["c"], ["cf"]),
            N("Flatten", ["d"], ["df"]),
            N("Concat", ["af", "b", "cf", "df"], ["y"], axis=1),
        ],
        [1, 3, 4],
        {"axes": np.int64([-1])},
    ),
    "casts_and_comparisons_with_where": (
        [
            N("Greater", ["x", "half"], ["gt"]),
            N("Less", ["x", "zero"], ["lt"]),
            N("Cast", ["gt"], ["gtf"], to=TensorProto.FLOAT),
            N("Equal", ["ca", "cb"], ["eq"]),
            N("Where", ["lt", "x", "gtf"], ["w"]),
            N("Where", ["eq", "w", "x"], ["y"]),
        ],
        [1, 5],
        {
            "half": np.float32(0.5),
            "zero": np.float32(0.0),
            "ca": np.int64([1, 2, 3, 4, 5]),
            "cb": np.int64([1, 0, 3, 0, 5]),
        },
    ),
    "shape_gather_concat_reshape_folds": (
        [
            N("Shape", ["x"], ["s"]),
            N("Gather", ["s", "zero"], ["b"], axis=0),
            N("Unsqueeze", ["b", "ax0"], ["bu"]),
            N("Concat", ["bu", "minus1"], ["target"], axis=0),
            N("Cast", ["target"], ["t64"], to=TensorProto.INT64),
            N("Reshape", ["x", "t64"], ["f"]),
            N(
                "ConstantOfShape",
                ["cos"],
                ["ones"],
                value=numpy_helper.from_array(np.float32([0.5])),
            ),
            N("Add", ["f", "ones"], ["y"]),
        ],
        [1, 2, 3],
        {
            "zero": np.int64(0),
            "ax0": np.int64([0]),
            "minus1": np.int64([-1]),
            "cos": np.int64([1, 6]),
        },
    ),
    "dropout_identity_batchnorm_4d": (
        [
            N("Dropout", ["x", "ratio"], ["d"]),
            N("Identity", ["d"], ["i"]),
            N("BatchNormalization", ["i", "sc", "bi", "mu", "var"], ["y"], epsilon=1e-3),
        ],
        [1, 3, 4, 4],
        {
            "ratio": np.float32(0.3),
            "sc": _w(3),
            "bi": _w(3),
            "mu": _w(3),
            "var": np.float32([0.5, 1.0, 2.0]),
        },
    ),
    "batchnorm_2d_without_batch_axis": (
        [N("BatchNormalization", ["x", "sc", "bi", "mu", "var"], ["y"])],
        [2, 3],
        {"sc": _w(3), "bi": _w(3), "mu": _w(3), "var": np.float32([0.5, 1.0, 2.0])},
    ),
    "layer_norm_over_the_last_two_axes": (
        [N("LayerNormalization", ["x", "sc", "bi"], ["y"], axis=-2, epsilon=1e-3)],
        [1, 3, 4],
        {"sc": _w(3, 4), "bi": _w(4)},
    ),
    "pools": (
        [
            N("MaxPool", ["x"], ["a"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
            N(
                "AveragePool",
                ["x"],
                ["b"],
                kernel_shape=[2, 3],
                pads=[1, 1, 1, 1],
                count_include_pad=1,
            ),
            N(
                "AveragePool",
                ["x"],
                ["c"],
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                count_include_pad=0,
            ),
            N("MaxPool", ["x"], ["d"], kernel_shape=[2, 2], pads=[0, 0, 1, 1], ceil_mode=0),
            N(
                "AveragePool",
                ["x"],
                ["e"],
                kernel_shape=[2, 2],
                pads=[1, 0, 0, 1],
                count_include_pad=1,
            ),
            N("GlobalAveragePool", ["x"], ["f"]),
            N("GlobalMaxPool", ["x"], ["g"]),
            *(N("Flatten", [v], [v + "f"]) for v in "abcdefg"),
            N("Concat", [v + "f" for v in "abcdefg"], ["y"], axis=1),
        ],
        [1, 2, 6, 7],
        {},
    ),
    "pool_1d_ceil": (
        [N("MaxPool", ["x"], ["y"], kernel_shape=[3], strides=[2], ceil_mode=1)],
        [1, 2, 10],
        {},
    ),
    "pads": (
        [
            N("Pad", ["x", "p1", "v"], ["a"]),
            N("Pad", ["x", "p2"], ["b"], mode="reflect"),
            N("Pad", ["x", "p2"], ["c"], mode="edge"),
            *(N("Flatten", [v], [v + "f"]) for v in "abc"),
            N("Concat", ["af", "bf", "cf"], ["y"], axis=1),
        ],
        [1, 2, 4, 5],
        {
            "p1": np.int64([0, 1, 2, -1, 0, 0, 1, 2]),
            "v": np.float32(0.7),
            "p2": np.int64([0, 0, 1, 2, 0, 0, 2, 1]),
        },
    ),
    "resize_and_upsample_nearest": (
        [
            N("Resize", ["x", "", "sc"], ["a"], mode="nearest"),
            N(
                "Resize",
                ["x", "", "", "sz"],
                ["b"],
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            ),
            N(
                "Resize",
                ["x", "", "", "sz"],
                ["c"],
                mode="nearest",
                coordinate_transformation_mode="align_corners",
                nearest_mode="round_prefer_ceil",
            ),
            *(N("Flatten", [v], [v + "f"]) for v in "abc"),
            N("Concat", ["af", "bf", "cf"], ["y"], axis=1),
        ],
        [1, 2, 3, 4],
        {"sc": np.float32([1, 1, 2, 2]), "sz": np.int64([1, 2, 7, 5])},
    ),
    "resize_bilinear": (
        [
            N("Resize", ["x", "", "sc"], ["a"], mode="linear"),
            N(
                "Resize",
                ["x", "", "", "sz"],
                ["b"],
                mode="linear",
                coordinate_transformation_mode="align_corners",
            ),
            N("Flatten", ["a"], ["af"]),
            N("Flatten", ["b"], ["bf"]),
            N("Concat", ["af", "bf"], ["y"], axis=1),
        ],
        [1, 2, 3, 4],
        {"sc": np.float32([1, 1, 2, 2]), "sz": np.int64([1, 2, 5, 7])},
    ),
    "expand_tile": (
        [
            N("Expand", ["x", "shape"], ["e"]),
            N("Tile", ["e", "reps"], ["y"]),
        ],
        [1, 1, 4],
        {"shape": np.int64([2, 3, 1]), "reps": np.int64([1, 2, 2])},
    ),
    "rank1_input_mlp": (
        [
            N("Gemm", ["x2", "W", "B"], ["h"], transB=1),
            N("Relu", ["h"], ["r"]),
            N("Gemm", ["r", "V"], ["y"], transB=1),
        ],
        [5],
        {"W": _w(4, 5), "B": _w(4), "V": _w(2, 4)},
    ),
    "residual_dag": (
        [
            N("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
            N("Relu", ["c"], ["r"]),
            N("Add", ["r", "x"], ["s"]),
            N("Flatten", ["s"], ["f"]),
            N("Gemm", ["f", "V"], ["y"], transB=1),
        ],
        [1, 2, 3, 3],
        {"W": _w(2, 2, 3, 3), "V": _w(3, 18)},
    ),
}
# the rank-1 MLP needs its input as a row for Gemm
CASES["rank1_input_mlp"][0].insert(0, N("Unsqueeze", ["x", "ax"], ["x2"]))
CASES["rank1_input_mlp"][2]["ax"] = np.int64([0])


@pytest.mark.parametrize("case", sorted(CASES))
def test_operator_family_matches_onnxruntime(tmp_path, case):
    nodes, shape, inits = CASES[case]
    module = converted(build(tmp_path, nodes, shape, inits))
    assert not module.training


def test_opset_18_mish_and_reduce_axes_as_inputs(tmp_path):
    nodes = [
        N("Mish", ["x"], ["m"]),
        N("ReduceMean", ["m", "axes"], ["y"], keepdims=0),
    ]
    converted(build(tmp_path, nodes, [1, 3, 4], {"axes": np.int64([1])}, opset=18))


def test_float16_rounding_is_refused_not_ignored(tmp_path):
    from threatlang.errors import UsageError

    nodes = [N("Cast", ["x"], ["h"], to=TensorProto.FLOAT16), N("Cast", ["h"], ["y"], to=1)]
    with pytest.raises(UsageError, match="rounds computed values to torch.float16"):
        load_onnx(build(tmp_path, nodes, [1, 4]))


def test_older_opsets_read_attributes_not_inputs(tmp_path):
    """opset 9-11 forms: Slice/Squeeze/Unsqueeze/ReduceSum axes as attributes, Clip bounds as
    attributes, Upsample with a scales input, Softmax coerced to 2-D at its axis."""
    nodes = [
        N("Slice", ["x"], ["s"], starts=[1], ends=[3], axes=[2]),
        N("Unsqueeze", ["s"], ["u"], axes=[0]),
        N("Squeeze", ["u"], ["q"], axes=[0]),
        N("Clip", ["q"], ["c"], min=0.2, max=0.6),
        N("Upsample", ["c", "scales"], ["up"], mode="nearest"),
        N("ReduceSum", ["up"], ["r"], axes=[3], keepdims=1),
        N("Softmax", ["r"], ["y"], axis=1),
    ]
    path = build(tmp_path, nodes, [1, 2, 4, 3], {"scales": np.float32([1, 1, 2, 3])}, opset=9)
    converted(path)


def test_softmax_before_opset_13_flattens_from_its_axis(tmp_path):
    path = build(tmp_path, [N("Softmax", ["x"], ["y"], axis=1)], [1, 2, 3], opset=11)
    converted(path)


def test_data_independent_subgraph_leaves_no_step(tmp_path):
    nodes, shape, inits = CASES["shape_gather_concat_reshape_folds"]
    module = converted(build(tmp_path, nodes, shape, inits))
    # Reshape to (1, -1) is a Flatten; the Add of the folded ConstantOfShape, one layer
    assert len(module) == 2 and isinstance(module[0], nn.Flatten)


def test_chains_are_sequential_and_dags_are_networks(tmp_path):
    nodes, shape, inits = CASES["residual_dag"]
    dag = converted(build(tmp_path, nodes, shape, inits))
    assert type(dag).__name__ == "OnnxNetwork"
    assert "Conv2d" in _step_types(dag) and "Linear" in _step_types(dag)
    nodes, shape, inits = CASES["conv_1d"]
    chain = converted(build(tmp_path, nodes, shape, inits, name="c"))
    assert isinstance(chain, nn.Sequential)
    assert "Conv2d" in _step_types(chain)  # a 1-D conv runs as a 2-D one of height 1


def test_evenly_spaced_gathers_are_slices(tmp_path):
    nodes, shape, inits = CASES["gather_scalar_and_strided_indices"]
    module = converted(build(tmp_path, nodes, shape, inits))
    assert "IndexSelect" not in _step_types(module) and "Slice" in _step_types(module)


def test_matmul_add_becomes_one_linear_with_bias(tmp_path):
    nodes = [N("MatMul", ["x", "W"], ["h"]), N("Add", ["h", "B"], ["y"])]
    module = converted(build(tmp_path, nodes, [1, 6], {"W": _w(6, 3), "B": _w(1, 3)}))
    assert _step_types(module) == ["Linear"] and module[0].bias is not None


def test_batch_axis_is_not_specialised(tmp_path):
    """Any batch size runs, and each row equals the row computed alone."""
    nodes, shape, inits = CASES["concat_split_slice_gather"]
    module = converted(build(tmp_path, nodes, shape, inits))
    x = torch.randn(5, *shape[1:], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        together = module(x)
        alone = torch.cat([module(x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(together, alone)


def test_converted_networks_export_with_a_dynamic_batch(tmp_path):
    """What the bound engine does: torch.export with a symbolic batch, core ATen ops; the
    exported program computes what the module computes."""
    from torch.export import Dim, export

    for case in ("residual_dag", "concat_split_slice_gather", "resize_and_upsample_nearest"):
        nodes, shape, inits = CASES[case]
        module = converted(build(tmp_path, nodes, shape, inits, name=case))
        x = torch.rand(3, *shape[1:])
        program = export(module, (x,), dynamic_shapes=({0: Dim("batch", min=2)},))
        program = program.run_decompositions()
        y = torch.rand(4, *shape[1:])
        torch.testing.assert_close(program.module()(y), module(y))


def test_supported_list_is_the_converter_table():
    assert sorted(SUPPORTED) == sorted(converters())
