"""import-vnnlib writes a property whose input set is a union of boxes (VNN-LIB's disjunctive
input constraints, ACAS Xu property 6) as one spec with `threat boxes { box {...} ... }`, the
boxes' exact bounds and one verdict: `holds` only when every box holds, `violated` when one
box holds a counterexample (issue 20)."""

from __future__ import annotations

import csv

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from threatlang.cli import main  # noqa: E402
from threatlang.interop.import_vnnlib import import_vnnlib  # noqa: E402
from threatlang.interop.vnnlib import Box, Linear, Query  # noqa: E402
from threatlang.interop.vnnlib_write import write_v1  # noqa: E402
from threatlang.ir.threats import BoxUnion  # noqa: E402
from threatlang.parse import load_all  # noqa: E402

BOXES = (Box([-1.0, -1.0], [0.0, 1.0]), Box([0.5, -1.0], [1.0, 1.0]))


def _net():
    torch.manual_seed(3)
    return torch.nn.Sequential(
        torch.nn.Linear(2, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)
    ).eval()


def _margin_maxima(net) -> list[float]:
    """max of y0 - y1 over each box, on a dense grid (a lower bound of the true maximum)."""
    out = []
    for box in BOXES:
        g = [torch.linspace(float(box.lo[i]), float(box.hi[i]), 301) for i in (0, 1)]
        x = torch.stack(torch.meshgrid(*g, indexing="ij"), -1).reshape(-1, 2)
        with torch.no_grad():
            y = net.double()(x.double())
        out.append(float((y[:, 0] - y[:, 1]).max()))
    return out


@pytest.fixture
def union_set(tmp_path):
    """Two union-of-two-boxes instances, unsafe where y0 - y1 >= t: t above both boxes'
    maxima (holds), and t between them (one box reaches it: violated)."""
    from threatlang.interop.onnx_export import export_onnx

    net = _net()
    export_onnx(net, (2,), tmp_path / "net.onnx")
    low, high = sorted(_margin_maxima(net))
    rows = []
    for name, t in (("safe", high + 0.05), ("unsafe", (low + high) / 2)):
        unsafe = ((Linear(((0, -1.0), (1, 1.0)), -t),),)  # y1 - y0 <= -t
        (tmp_path / f"{name}.vnnlib").write_text(write_v1(Query((2,), 2, BOXES, unsafe)))
        rows.append(f"net.onnx,{name}.vnnlib,30")
    (tmp_path / "instances.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_a_union_of_boxes_is_imported_as_one_spec_with_its_exact_boxes(union_set):
    out = import_vnnlib(union_set / "instances.csv", union_set / "u.threat")
    specs = load_all(out)
    assert [s.name for s in specs] == ["u_safe", "u_unsafe"]  # no per-box specs
    for spec in specs:
        assert isinstance(spec.threat, BoxUnion)
        got = [(b.lower, b.upper) for b in spec.threat.boxes]
        assert got == [(tuple(b.lo), tuple(b.hi)) for b in BOXES]
        (certify,) = spec.actions
        assert certify.method == "bab" and certify.time_limit == 30.0
    assert out.read_text().count("threat boxes {") == 2
    assert main(["check", str(out)]) == 0


def test_a_union_instance_has_one_verdict_in_the_set(union_set):
    runs = union_set / "runs"
    main(["run", str(union_set / "instances.csv"), "-o", str(runs), "-q", "--threads", "1"])
    rows = list(csv.reader((runs / "results.csv").read_text().splitlines()))[1:]
    assert {r[0]: r[1] for r in rows} == {"net__safe": "holds", "net__unsafe": "violated"}
    # each instance ran as one spec, in one run directory, with a record per box
    (safe,) = [d for d in runs.iterdir() if d.is_dir() and d.name.startswith("net__safe")]
    records = (safe / "records.jsonl").read_text()
    assert records.count('"verdict": "holds"') == 2  # both boxes proved
