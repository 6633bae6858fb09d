"""import-vnnlib writes specs that run and can decide (issue 20): label_unchanged instances
become `certify bab` box specs with the instance's time-out and the input shape the ONNX
network declares; `--recognise` keeps centres inside the declared range; nothing is written
(or overwritten) when an import is refused; csv paths stay in the csv's folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from threatlang.cli import main  # noqa: E402
from threatlang.errors import UsageError  # noqa: E402
from threatlang.interop.import_vnnlib import import_vnnlib  # noqa: E402
from threatlang.interop.vnnlib import Box, Query, label_unsafe  # noqa: E402
from threatlang.interop.vnnlib_write import write_v1  # noqa: E402
from threatlang.parse import load, load_all  # noqa: E402


def _onnx(path: Path, shape: tuple[int, ...], seed: int = 0) -> Path:
    """A small ReLU network whose declared input is `shape` (batch first)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    n = int(np.prod(shape[1:]))
    w1, w2 = rng.normal(size=(8, n)).astype(np.float32), rng.normal(size=(3, 8)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "w1"], ["h"], transB=1),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def _label(path: Path, x: np.ndarray, eps: float, label: int, low=0.0, high=1.0) -> Path:
    """A VNN-COMP label_unchanged property: the float32 ball clipped to [low, high]."""
    eps32 = float(np.float32(eps))  # what generators write: the float32 radius
    box = Box(np.clip(x - eps32, low, high), np.clip(x + eps32, low, high))
    path.write_text(write_v1(Query((x.size,), 3, (box,), label_unsafe(label, 3))))
    return path


def _predicted(onnx_path: Path, x: np.ndarray, shape) -> int:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x.astype(np.float32).reshape(shape)})
    return int(y.argmax())


@pytest.fixture
def bench(tmp_path):
    """Two label_unchanged instances (one pixel at 0, so its ball is clipped) on a network
    whose ONNX input is [1, 6, 1], with time-outs 7 and 9."""
    net = _onnx(tmp_path / "net.onnx", (1, 6, 1))
    rows = []
    for k, timeout in enumerate((7, 9)):
        x = np.array([0.0, 0.3, 0.5, 0.7, 1.0, 0.2 + 0.1 * k])
        label = _predicted(net, x, (1, 6, 1))
        _label(tmp_path / f"p{k}.vnnlib", x, 0.03, label)
        rows.append(f"net.onnx,p{k}.vnnlib,{timeout}")
    (tmp_path / "instances.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_label_properties_become_bab_box_specs_with_their_time_out(bench):
    out = bench / "spec" / "mnistfc.threat"
    assert main(["import-vnnlib", str(bench / "instances.csv"), "-o", str(out)]) == 0
    specs = load_all(out)
    assert [s.name for s in specs] == ["mnistfc_p0", "mnistfc_p1"]
    for spec, timeout in zip(specs, (7.0, 9.0), strict=True):
        (certify,) = spec.actions
        assert certify.method == "bab" and certify.time_limit == timeout
        assert spec.domain.shape == (6, 1)  # the ONNX input, batch dimension dropped
        assert spec.threat.lower[0] == 0.0 and min(spec.threat.lower) >= 0.0  # clipped, exact
    assert not out.with_suffix(".npz").exists()


def test_an_imported_spec_with_a_rank_3_onnx_input_runs_to_a_verdict(bench):
    out = bench / "b.threat"
    assert main(["import-vnnlib", str(bench / "instances.csv"), "-o", str(out)]) == 0
    name = load_all(out)[0].name
    assert main(["run", str(out), "--spec", name, "-o", str(bench / "run"), "-q"]) == 0
    record = (bench / "run" / "records.jsonl").read_text()
    assert '"verdict": "holds"' in record or '"verdict": "violated"' in record


def test_recognised_centres_stay_inside_the_declared_range(tmp_path):
    """Centres of balls clipped at 0 were stored as -1.1e-8 (radius from the float32 side);
    they are computed in float64 and stored as float32 inside [low, high]."""
    from threatlang.data import load_dataset

    _onnx(tmp_path / "net.onnx", (1, 1, 2, 3))
    rng = np.random.default_rng(1)
    rows = []
    for k in range(3):
        x = rng.random(6)
        x[k] = 0.0
        x[5 - k] = 1.0
        _label(tmp_path / f"p{k}.vnnlib", x, 0.1, 0)
        rows.append(f"net.onnx,p{k}.vnnlib,60")
    (tmp_path / "instances.csv").write_text("\n".join(rows) + "\n")
    spec = load(import_vnnlib(tmp_path / "instances.csv", tmp_path / "r.threat", recognise=True))
    assert spec.domain.shape == (1, 2, 3) and (spec.domain.low, spec.domain.high) == (0.0, 1.0)
    data = load_dataset(spec.data)
    assert data.test.x.min() >= 0.0 and data.test.x.max() <= 1.0
    assert spec.threat.radii == (pytest.approx(0.1, abs=1e-8),)


def test_recognise_refuses_an_input_the_npz_data_cannot_hold(bench):
    with pytest.raises(UsageError, match=r"input is \(6, 1\).*without --recognise"):
        import_vnnlib(bench / "instances.csv", bench / "r.threat", recognise=True)
    assert not (bench / "r.threat").exists() and not (bench / "r.npz").exists()


def test_a_refused_import_leaves_the_previous_spec_alone(bench, capsys):
    out = bench / "o.threat"
    out.write_text("# the user's own spec\n")
    (bench / "p1.vnnlib").write_text("(declare-const X_0 Real)\n(assert (<= X_0))\n")
    assert main(["import-vnnlib", str(bench / "instances.csv"), "-o", str(out)]) == 2
    assert "declares no output Y_j" in capsys.readouterr().err
    assert out.read_text() == "# the user's own spec\n"


def test_paths_outside_the_csv_folder_need_the_flag(bench):
    folder = bench / "inner"
    folder.mkdir()
    (folder / "p0.vnnlib").write_text((bench / "p0.vnnlib").read_text())
    (folder / "instances.csv").write_text("../net.onnx,p0.vnnlib,5\n")
    with pytest.raises(UsageError, match="lies outside the csv's folder"):
        import_vnnlib(folder / "instances.csv", folder / "o.threat")
    spec = load(import_vnnlib(folder / "instances.csv", folder / "o.threat", allow_outside=True))
    assert spec.model.name == "../net.onnx"


def test_instances_on_several_networks_are_one_file_of_specs(bench):
    """Each box spec names its own network, so one csv may use several (ACAS Xu's 45)."""
    _onnx(bench / "net2.onnx", (1, 6, 1), seed=1)
    rows = (bench / "instances.csv").read_text() + "net2.onnx,p0.vnnlib,11\n"
    (bench / "instances.csv").write_text(rows)
    specs = load_all(import_vnnlib(bench / "instances.csv", bench / "all.threat"))
    assert [s.model.name for s in specs] == ["net.onnx", "net.onnx", "net2.onnx"]
    assert len({s.name for s in specs}) == 3
