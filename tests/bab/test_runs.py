"""`certify bab` as a run: shards are work items through the shared run loop (in-process and
on Ray alike), records resume, counterexamples come confirmed by onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from threatlang.api import run  # noqa: E402
from threatlang.parse import parse  # noqa: E402

from .helpers import grid_outputs, random_net  # noqa: E402

SPEC = """threatlang 1
spec two_d {{
  model onnx("{onnx}")
  threat box {{
    bounds [(-1, 1), (-1, 1)]
  }}
  require outputs {{
    linear "y[0] - y[1] <= {t!r}"
  }}
  certify bab {{ time_limit 30s, shards {shards} }}
}}
"""


@pytest.fixture
def net_file(tmp_path):
    from threatlang.interop.onnx_export import export_onnx

    net = random_net(0)
    export_onnx(net, (2,), tmp_path / "net.onnx")
    y = grid_outputs(net, -np.ones(2), np.ones(2), 201)
    return tmp_path / "net.onnx", float((y[:, 0] - y[:, 1]).max())


def _key(records):
    return [(r.id, r.status, r.values["verdict"], r.reason is None) for r in records]


def test_shards_are_work_items_and_resume(net_file, tmp_path):
    onnx, top = net_file
    spec = parse(SPEC.format(onnx=onnx, t=top + 0.05, shards=4))
    whole = run(spec, output=tmp_path / "whole", quiet=True)
    assert [r.id for r in whole.records] == [f"two_d#{k}" for k in range(4)]
    assert whole.summary.metrics["verdict"] == "holds"
    assert whole.summary.metrics["soundness_violations"] == 0
    cut = tmp_path / "cut"
    run(spec, output=cut, quiet=True)
    lines = (cut / "records.jsonl").read_text().splitlines(keepends=True)
    (cut / "records.jsonl").write_text("".join(lines[:2]))
    resumed = run(spec, output=cut, quiet=True, resume=True)
    assert _key(resumed.records) == _key(whole.records)
    kept = (cut / "records.jsonl").read_text().splitlines(keepends=True)
    assert kept[:2] == lines[:2] and len(kept) == 4  # the first two were not run again


def test_counterexample_is_confirmed_by_onnxruntime(net_file, tmp_path):
    import onnxruntime as ort

    onnx, top = net_file
    spec = parse(SPEC.format(onnx=onnx, t=top - 0.05, shards=1))
    result = run(spec, output=tmp_path / "r", quiet=True)
    (record,) = result.records
    assert record.status.value == "falsified" and record.values["verdict"] == "violated"
    x = np.asarray(record.counterexample["input"], dtype=np.float32)
    assert (x >= -1).all() and (x <= 1).all()
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    y = session.run(None, {session.get_inputs()[0].name: x[None]})[0][0].astype(np.float64)
    assert y[0] - y[1] > top - 0.05
    saved = json.loads((tmp_path / "r" / "summary.json").read_text())
    assert saved["verdict"] == "violated"


@pytest.mark.slow  # a local Ray cluster: ~45 s
def test_ray_gives_the_same_verdicts(net_file, local_ray, tmp_path):
    onnx, top = net_file
    spec = parse(SPEC.format(onnx=onnx, t=top + 0.05, shards=2))
    here = run(spec, output=tmp_path / "here", quiet=True)
    there = run(spec, output=tmp_path / "ray", quiet=True, executor="ray", workers=2)
    assert _key(here.records) == _key(there.records)


def test_an_unsound_engine_is_caught_not_certified(net_file, tmp_path, monkeypatch):
    """A deliberately broken search that answers `holds` for a property the network violates
    (the threshold is below the grid's maximum): the run's own sampling of the box contradicts
    the proof, so the record is an error, counted in soundness_violations, never `holds`."""
    from threatlang.backends.bab import search

    def broken(net, problem, original, lo, hi, opts, seed=0):  # noqa: ANN001
        return search.Outcome("holds", bound_alone="holds", domains=1)

    onnx, top = net_file
    monkeypatch.setattr(search, "solve", broken)
    spec = parse(SPEC.format(onnx=onnx, t=top - 0.5, shards=1))
    result = run(spec, output=tmp_path / "broken", quiet=True)
    assert result.summary.metrics["soundness_violations"] > 0
    assert all(r.status.value != "certified" for r in result.records)
    assert all("engine defect" in (r.reason or "") for r in result.records)
