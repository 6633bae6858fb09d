import json
import subprocess
import sys

import attrs
import pytest

import threatlang
from threatlang.api import plan
from threatlang.backends.landscape import BACKEND
from threatlang.errors import CapabilityError
from threatlang.ir.actions import (
    Evaluate,
    Train,
)
from threatlang.ir.refs import DataSource
from threatlang.backends.choices import GeneratedData

SPEC = """\
threatlang 1
spec volume_tiny {
  model mlp_small { hidden 8 }
  data digits { classes [3, 8] }
  seed 3
  train guess_and_check { max_guesses 4000; guess_batch 1000 }
  train pattern_search { max_evaluations 1500 }
  train standard { epochs 200; lr 0.05 }
  evaluate volume {
    samples [2, 4]
    trials 1
    loss_bins [0.32, 0.4, 0.5]
    poison_val 16
    poison_steps 200
  }
  evaluate wedge { widths [2, 8]; draws 1; max_guesses 20000; poison_steps 100 }
}
"""


def _spec(tmp_path, text=SPEC):
    path = tmp_path / "v.threat"
    path.write_text(text)
    return threatlang.load(path)


def test_plan_describes_optimizers_grid_and_figure(tmp_path):
    text = plan(_spec(tmp_path)).describe()
    for piece in (
        "Guess & Check: U[-1, 1]",
        "Pattern Search: step 1",
        "SGD: lr 0.05",
        "2, 4 samples x 1 trials",
        "widths 2, 8",
    ):
        assert piece in text


def test_what_the_backend_cannot_run_is_named(tmp_path):
    spec = _spec(tmp_path)
    assert BACKEND.accepts(spec) == ()
    without_eval = attrs.evolve(
        spec, actions=tuple(a for a in spec.actions if not isinstance(a, Evaluate))
    )
    assert "evaluate volume" in " ".join(u.reason for u in BACKEND.accepts(without_eval))
    only_sgd = attrs.evolve(
        spec,
        actions=tuple(
            a for a in spec.actions if not isinstance(a, Train) or a.strategy == "standard"
        ),
    )
    assert "gradient-free" in " ".join(u.reason for u in BACKEND.accepts(only_sgd))
    wedge_data = attrs.evolve(
        spec, data=attrs.evolve(spec.data, source=GeneratedData.WEDGE, classes=None)
    )
    assert "labelled examples" in " ".join(u.reason for u in BACKEND.accepts(wedge_data))
    with pytest.raises(CapabilityError) as err:
        plan(_spec(tmp_path, SPEC.replace("max_guesses 4000", "max_guess 4000")))
    assert "unknown option 'max_guess'" in str(err.value)


def test_backend_package_imports_no_torch():
    code = "import sys, threatlang.backends.landscape as m; print(m.BACKEND.name, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["landscape", "False"]


@pytest.mark.slow
def test_the_shipped_spec_runs_in_minutes(tmp_path):
    result = threatlang.run("specs/volume_digits.threat", output=tmp_path / "run", quiet=True)
    m = result.summary.metrics
    assert all(
        0.5 < m[k] <= 1.0
        for k in ("guess_and_check_accuracy", "pattern_search_accuracy", "sgd_accuracy")
    )
    assert all(v == 0.0 for v in m["poison_val_accuracy"].values())


def test_end_to_end_run_writes_tables_metrics_and_wedge_png(tmp_path):
    result = threatlang.run(_spec(tmp_path), output=tmp_path / "run", quiet=True)
    assert result.backend == "landscape"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in (
        "guess_and_check_accuracy",
        "pattern_search_accuracy",
        "sgd_accuracy",
        "loss_bin_tables",
        "poison_val_accuracy",
    ):
        assert key in summary
    tables = summary["loss_bin_tables"]
    assert set(tables) == {"guess_and_check", "pattern_search", "sgd", "linear_sgd"}
    assert [c["window"] for c in tables["sgd"]["4"]] == ["[0.32, 0.4)", "[0.4, 0.5)"]
    ids = {r.id for r in result.records}
    assert {"volume/n4/t0/guess_and_check", "poison/n2/t0", "wedge/sgd/w8/d0"} <= ids
    png = tmp_path / "run" / "wedge_boundaries.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    # every accuracy the records carry is a real measurement in [0, 1], never a certificate
    assert all(r.status.value in ("unknown", "timeout") for r in result.records)
    # resume reuses finished trials instead of rerunning them
    again = threatlang.run(_spec(tmp_path), output=tmp_path / "run", quiet=True, resume=True)
    assert again.summary.metrics["loss_bin_tables"] == result.summary.metrics["loss_bin_tables"]
