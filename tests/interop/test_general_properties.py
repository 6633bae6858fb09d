"""General properties through VNN-LIB: export of `threat box` + `require outputs` (1.0 and 2.0)
and import of ACAS-style instances (disjunctions, Sub/Div normalisation in the ONNX) into specs
that run; deeply nested files are refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from threatlang.cli import main  # noqa: E402
from threatlang.errors import UsageError  # noqa: E402
from threatlang.interop.export import export_vnnlib  # noqa: E402
from threatlang.interop.onnx_import import check_against_onnxruntime, load_onnx  # noqa: E402
from threatlang.interop.vnnlib_props import safe_formula  # noqa: E402
from threatlang.interop.vnnlib_read import read  # noqa: E402
from threatlang.ir.properties import Conjunction, Disjunction, LinearConstraint  # noqa: E402
from threatlang.parse import load_all, parse  # noqa: E402


def _holds(f, y) -> bool:
    if isinstance(f, LinearConstraint):
        v = float(np.dot(f.coeffs, y[: len(f.coeffs)]))
        return {"<=": v <= f.rhs, "<": v < f.rhs, ">=": v >= f.rhs, ">": v > f.rhs}[f.op.value]
    parts = [_holds(p, y) for p in f.parts]
    return all(parts) if isinstance(f, Conjunction) else any(parts)


BOX_SPEC = """threatlang 1
spec boxed {
  model onnx("net.onnx")
  threat box {
    lower [-1, -0.5, 0]
    upper [1, 0.5, 0.25]
  }
  require outputs {
    linear "y[0] <= 3.5"
    any {
      linear "y[0] - y[1] < 0"
      linear "2*y[2] >= y[3] + 0.5"
    }
  }
  certify bab { time_limit 5s }
}
"""


@pytest.fixture
def box_spec(tmp_path):
    from torch import nn

    from threatlang.interop.onnx_export import export_onnx

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4)).eval()
    export_onnx(net, (3,), tmp_path / "net.onnx")
    path = tmp_path / "boxed.threat"
    path.write_text(BOX_SPEC)
    return path


@pytest.mark.parametrize("version", [1, 2])
def test_box_spec_exports_and_reads_back(box_spec, tmp_path, version):
    spec = load_all(box_spec)[0]
    out = export_vnnlib(spec, tmp_path / "out", version=version)
    query = read(out.properties[0].read_text(), (3,))
    assert len(query.boxes) == 1
    assert np.allclose(query.boxes[0].lo, [-1, -0.5, 0]) and np.allclose(
        query.boxes[0].hi, [1, 0.5, 0.25]
    )
    back = safe_formula(query.unsafe)
    rng = np.random.default_rng(0)
    for y in rng.normal(0, 3, size=(2000, 4)):  # off the boundaries: strictness aside, equal
        assert _holds(back, y) == _holds(spec.require.formula, y)
    if version == 2 and __import__("importlib").util.find_spec("vnnlib") is not None:
        import vnnlib
        import vnnlib.compat

        (case,) = vnnlib.compat.transform(vnnlib.parse_query_file(str(out.properties[0])))
        assert [tuple(b) for b in case.input_box] == [(-1, 1), (-0.5, 0.5), (0, 0.25)]
        assert len(case.output_constraints) == len(query.unsafe)  # one polytope per term


def test_a_box_has_no_label(box_spec):
    from threatlang.errors import SpecError

    text = box_spec.read_text()
    start, end = text.index("require outputs"), text.index("certify")
    with pytest.raises(SpecError, match="cannot require label_unchanged"):
        parse(text[:start] + "require label_unchanged\n  " + text[end:])


def test_normalisation_becomes_bounded_layers(tmp_path):
    from threatlang.backends.bab.acas_like import train, write_onnx

    write_onnx(train(0, steps=5), tmp_path / "a.onnx")
    model = load_onnx(tmp_path / "a.onnx")
    names = [type(m).__name__ for m in model]
    assert "Normalize" not in names and names[:2] == ["Flatten", "Linear"]
    assert check_against_onnxruntime(tmp_path / "a.onnx", model, (1, 1, 5)) < 1e-4
    from threatlang.bounds import build_ops

    assert build_ops(model, torch.zeros(1, 1, 1, 5))  # the engine bounds every layer


def test_constant_ops_fold_and_refuse(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def graph(nodes, inits, shape=(1, 4)):
        g = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
            inits,
        )
        path = tmp_path / f"g{len(list(tmp_path.iterdir()))}.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
        return path

    w = np.arange(8, dtype=np.float32).reshape(2, 4) / 7
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(np.float32([0, 2, 0, 1]), "m"),
        numpy_helper.from_array(np.float32([1, -1]), "b"),
    ]
    # Mul by a constant with zeros, then a Gemm, then Add of a bias (folded into the Gemm)
    path = graph(
        [
            helper.make_node("Mul", ["x", "m"], ["a"]),
            helper.make_node("Gemm", ["a", "W"], ["c"], transB=1),
            helper.make_node("Add", ["c", "b"], ["y"]),
        ],
        inits,
    )
    model = load_onnx(path)
    assert [type(m).__name__ for m in model] == ["Linear", "Linear"]
    assert check_against_onnxruntime(path, model, (4,)) < 1e-5
    zero = [numpy_helper.from_array(np.float32([1, 0, 1, 1]), "z")]
    path = graph([helper.make_node("Div", ["x", "z"], ["y"])], zero)
    with pytest.raises(UsageError, match="Div by a constant with zeros"):
        load_onnx(path)


def test_acas_style_instances_import_and_run(tmp_path, capsys):
    """An instances.csv of ACAS-style properties (disjunctions) on a Sub/Div-normalised ONNX
    network imports to specs that run to a verdict, with no 'cannot bound' anywhere."""
    pytest.importorskip("onnxruntime")
    from threatlang.backends.bab.acas_like import write_instances

    csv = write_instances(tmp_path / "bench", steps=150, timeout=20)
    out = tmp_path / "spec" / "acas.threat"  # a folder that does not exist yet
    assert main(["import-vnnlib", str(csv), "-o", str(out)]) == 0
    specs = load_all(out)
    assert len(specs) == 4
    assert isinstance(specs[1].require.formula, Disjunction)  # "y0 is not the largest"
    assert main(["run", str(out), "--spec", specs[2].name, "-o", str(tmp_path / "r"), "-q"]) == 0
    record = (tmp_path / "r" / "records.jsonl").read_text()
    assert '"verdict": "holds"' in record or '"verdict": "violated"' in record
    assert "cannot bound" not in record


def test_deeply_nested_vnnlib_is_one_sentence(tmp_path, capsys):
    deep = "(declare-const X_0 Real)\n(declare-const Y_0 Real)\n(assert " + "(and " * 100_000
    deep += "(<= X_0 1.0)" + ")" * 100_000 + ")\n"
    (tmp_path / "deep.vnnlib").write_text(deep)
    with pytest.raises(UsageError, match="deeper than 200 levels"):
        read(deep)
    code = main(
        [
            "import-vnnlib",
            str(tmp_path / "deep.vnnlib"),
            "--onnx",
            "m.onnx",
            "-o",
            str(tmp_path / "o.threat"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") <= 3


def test_spec_files_that_import_writes_round_trip(tmp_path):
    spec = parse(BOX_SPEC)
    from threatlang.interop.vnnlib_props import outputs_text

    again = parse(
        BOX_SPEC.replace(
            BOX_SPEC[BOX_SPEC.index("require") : BOX_SPEC.index("certify")],
            outputs_text(spec.require.formula) + "\n  ",
        )
    )
    assert again.require == spec.require
