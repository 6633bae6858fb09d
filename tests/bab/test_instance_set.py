"""`threatlang run` on an instance set: every spec of a multi-spec file (or row of an
instances.csv) in one process, each in its own run directory, `results.csv` in VNN-COMP's
form, `--resume` per instance, `--spec` still picks one, a union of boxes is one verdict."""

from __future__ import annotations

import csv

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from threatlang.cli import main  # noqa: E402
from threatlang.errors import UsageError  # noqa: E402
from threatlang.instance_set import (  # noqa: E402
    RunSettings,
    Verdict,
    combine,
    read_ledger,
    read_set,
    run_set,
)

SPEC = """spec {name} {{
  model onnx("{onnx}")
  threat box {{
    bounds [(-1, 1), (-1, 1)]
  }}
  require outputs {{
    linear "y[0] - y[1] <= {t!r}"
  }}
  certify bab {{ time_limit 30s }}
}}
"""


@pytest.fixture
def two_specs(tmp_path):
    """A file with a spec that holds (margin above the grid maximum) and one that is violated."""
    from threatlang.interop.onnx_export import export_onnx

    from .helpers import grid_outputs, random_net

    net = random_net(0)
    export_onnx(net, (2,), tmp_path / "net.onnx")
    y = grid_outputs(net, -np.ones(2), np.ones(2), 201)
    top = float((y[:, 0] - y[:, 1]).max())
    text = "threatlang 1\n" + "\n".join(
        SPEC.format(name=n, onnx=tmp_path / "net.onnx", t=t)
        for n, t in (("safe", top + 0.05), ("broken", top - 0.05))
    )
    path = tmp_path / "set.threat"
    path.write_text(text)
    return path


def _ledger(path):
    return {o.instance: o.verdict for o in read_ledger(path).values()}


def test_every_spec_runs_in_its_own_directory_with_one_results_file(two_specs, tmp_path):
    root = tmp_path / "out"
    assert main(["run", str(two_specs), "-o", str(root), "-q"]) == 0
    assert _ledger(root / "results.csv") == {"safe": Verdict.HOLDS, "broken": Verdict.VIOLATED}
    rows = list(csv.reader((root / "results.csv").read_text().splitlines()))
    assert rows[0] == ["instance", "verdict", "time"] and len(rows) == 3
    assert all(float(r[2]) >= 0 for r in rows[1:])
    for name in ("safe", "broken"):
        assert (root / name / "records.jsonl").exists()


def test_an_earlier_set_is_never_overwritten_without_resume(two_specs, tmp_path):
    root = tmp_path / "out"
    instances = read_set(two_specs, root)
    run_set(instances, root, RunSettings())
    with pytest.raises(UsageError, match="--resume"):
        run_set(instances, root, RunSettings())


def test_resume_runs_only_the_instances_missing_from_the_ledger(two_specs, tmp_path):
    root = tmp_path / "out"
    instances = read_set(two_specs, root)
    run_set(instances, root, RunSettings())
    lines = (root / "results.csv").read_text().splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith("broken")]
    (root / "results.csv").write_text("".join(kept))
    safe_records = (root / "safe" / "records.jsonl").read_bytes()
    outcomes = run_set(instances, root, RunSettings(), resume=True)
    assert [o.instance for o in outcomes] == ["safe", "broken"]
    assert _ledger(root / "results.csv")["broken"] is Verdict.VIOLATED
    assert (root / "safe" / "records.jsonl").read_bytes() == safe_records  # not rerun
    assert (root / "broken.unfinished-1" / "records.jsonl").exists()  # set aside, not lost


def test_spec_still_picks_one(two_specs, tmp_path):
    root = tmp_path / "one"
    assert main(["run", str(two_specs), "--spec", "safe", "-o", str(root), "-q"]) == 0
    assert (root / "records.jsonl").exists() and not (root / "results.csv").exists()


def test_a_union_of_boxes_is_one_verdict():
    h, v, t, u = Verdict.HOLDS, Verdict.VIOLATED, Verdict.TIMEOUT, Verdict.UNKNOWN
    assert combine([h, h]) is h
    assert combine([h, v]) is v and combine([t, v]) is v
    assert combine([h, t]) is t and combine([h, u]) is u
    assert combine([]) is u


def test_a_malformed_ledger_line_is_one_sentence(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("instance,verdict,time\na,maybe,1.0\n")
    with pytest.raises(UsageError, match="results.csv:2"):
        read_ledger(path)


@pytest.mark.slow  # a local Ray cluster
def test_ray_runs_the_instances_in_parallel_with_the_same_verdicts(two_specs, tmp_path, local_ray):
    # a fresh Ray worker imports torch and captures the network inside the instance's limit
    relaxed = tmp_path / "relaxed.threat"
    relaxed.write_text(two_specs.read_text().replace("time_limit 30s", "time_limit 600s"))
    here = run_set(read_set(relaxed, tmp_path / "a"), tmp_path / "a", RunSettings())
    there = run_set(
        read_set(relaxed, tmp_path / "b"), tmp_path / "b", RunSettings(), executor="ray"
    )
    assert [(o.instance, o.verdict) for o in here] == [(o.instance, o.verdict) for o in there]


def test_an_instances_csv_may_not_point_outside_its_folder(tmp_path):
    """`run instances.csv` reads rows as import-vnnlib does (issue 21): a path that leaves the
    csv's folder is refused in one sentence that quotes no file contents."""
    from threatlang.errors import UsageError
    from threatlang.instance_set import read_set

    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.onnx").write_text("root:x:0:0")
    sets = tmp_path / "set"
    sets.mkdir()
    (sets / "instances.csv").write_text("../outside/secret.onnx,prop.vnnlib,10\n")
    with pytest.raises(UsageError) as err:
        read_set(sets / "instances.csv", tmp_path / "runs")
    assert "outside the csv's folder" in str(err.value) and "root:x" not in str(err.value)
