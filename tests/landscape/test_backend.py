import json
import subprocess
import sys

import attrs
import pytest

import threatlang
from threatlang.api import plan
from threatlang.backends.choices import GeneratedData
from threatlang.backends.landscape import BACKEND
from threatlang.backends.landscape.summary import LandscapeSummary
from threatlang.errors import CapabilityError
from threatlang.ir.actions import (
    Evaluate,
    Train,
)

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
        "Guess & Check: U[-1, 1] guesses, 1000 per vectorised batch, at most 4000",
        "Pattern Search: step 1, /2 after a pass without progress (down to 0.0001), at most "
        "1500 evaluations; a step is kept when the training loss falls",
        "SGD: lr 0.05, momentum 0.9, weight decay 0, batches of 64, at most 200 steps",
        "2, 4 samples x 1 trials",
        "classes [3, 8]",
        "linear baseline (Table 7.2): a linear model on the same splits, SGD: lr 0.05",
        "Adam lr 0.01, at most 200 steps",
        "widths 2, 8",
    ):
        assert piece in text, piece


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
    assert all(0.5 < m["accuracy"][k] <= 1.0 for k in ("guess_and_check", "pattern_search", "sgd"))
    assert all(v == 0.0 for v in m["poison_val_accuracy"].values())


def test_end_to_end_run_writes_tables_metrics_and_wedge_png(tmp_path):
    result = threatlang.run(_spec(tmp_path), output=tmp_path / "run", quiet=True)
    assert result.backend == "landscape"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert set(summary["accuracy"]) == {"guess_and_check", "pattern_search", "sgd", "linear_sgd"}
    # the summary is exactly the declared schema
    LandscapeSummary(**result.summary.metrics)
    assert set(summary["matched_accuracy"]) == {"guess_and_check", "pattern_search", "linear_sgd"}
    for opt, by_size in summary["matched_accuracy"].items():
        for key, m in by_size.items():
            assert set(m["bins"]) <= {"[0.32, 0.4)", "[0.4, 0.5)"}
            if m["bins"]:
                assert m["gap"] == pytest.approx(m["accuracy"] - m["sgd_accuracy"])
            gaps = summary["paired_gaps"][opt][key]
            assert [g["window"] for g in gaps] == ["[0.32, 0.4)", "[0.4, 0.5)"]
    tables = summary["loss_bin_tables"]
    assert set(tables) == {"guess_and_check", "pattern_search", "sgd", "linear_sgd"}
    assert [c["window"] for c in tables["sgd"]["4"]] == ["[0.32, 0.4)", "[0.4, 0.5)"]
    ids = {r.id for r in result.records}
    assert {"volume/n4/t0/guess_and_check", "poison/n2/t0", "wedge/sgd/w8/d0"} <= ids
    png = tmp_path / "run" / "wedge_boundaries.png"
    assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"
    # every accuracy the records carry is a real measurement in [0, 1], never a certificate
    assert all(r.status.value in ("unknown", "timeout") for r in result.records)
    # resume reuses finished trials instead of rerunning them, and keeps the stage timings
    timings = json.loads((tmp_path / "run" / "timings.json").read_text())
    assert set(timings) == {"volume", "wedge"}
    again = threatlang.run(_spec(tmp_path), output=tmp_path / "run", quiet=True, resume=True)
    assert again.summary.metrics["loss_bin_tables"] == result.summary.metrics["loss_bin_tables"]


TEN_CLASS = """\
threatlang 1
spec volume_ten {
  model mlp_small { hidden 8 }
  data digits { test_limit 100 }
  seed 1
  train pattern_search { max_evaluations 300 }
  train standard { epochs 100; lr 0.05 }
  evaluate volume {
    samples [20]
    trials 1
    loss_bins [0, 5]
    linear_baseline false
    poison false
    widths [0.5, 1]
  }
}
"""


def test_ten_classes_and_widths_build_a_ten_output_model_per_width(tmp_path):
    """Table 7.4 (every class, not a forced pair) and Table 7.6 (the model's width scaled)."""
    spec = _spec(tmp_path, TEN_CLASS)
    text = plan(spec).describe()
    assert "every class of the data" in text and "`width` option at 0.5, 1" in text
    result = threatlang.run(spec, output=tmp_path / "run", quiet=True)
    m = result.summary.metrics
    assert m["widths"] == [0.5, 1.0]
    assert set(m["accuracy_by_samples"]["sgd"]) == {"w0.5/n20", "w1/n20"}
    ids = {r.id for r in result.records}
    assert {"volume/w0.5/n20/t0/sgd", "volume/w1/n20/t0/pattern_search"} <= ids
    for r in result.records:  # labels 0..9: a two-class model could not score them
        assert r.values["width"] in (0.5, 1.0)
    LandscapeSummary(**m)


def test_widths_need_a_builtin_model_with_a_width_option(tmp_path):
    text = TEN_CLASS.replace("model mlp_small { hidden 8 }", 'model onnx("net.onnx")')
    problems = BACKEND.accepts(_spec(tmp_path, text))
    assert any("width option" in p.reason for p in problems)


def _fake_cifar(directory, per_batch=40):
    """CIFAR-10 python batches in the official layout (class-dependent random pixels)."""
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        labels = rng.integers(0, 10, per_batch)
        data = rng.integers(0, 128, (per_batch, 3 * 32 * 32)) + 100 * (labels[:, None] == 1)
        batch = {b"data": data.astype(np.uint8), b"labels": [int(v) for v in labels]}
        (directory / name).write_bytes(pickle.dumps(batch))


def test_the_cifar10_spec_checks_and_runs_from_a_user_path(tmp_path, shrunk_spec):
    """Table 7.3's spec: two CIFAR-10 classes read from the user's files (never downloaded)."""
    from pathlib import Path

    spec_file = Path("specs/volume_cifar10.threat")
    assert BACKEND.accepts(threatlang.load(spec_file)) == ()
    data = tmp_path / "cifar"
    data.mkdir()
    _fake_cifar(data)
    text = shrunk_spec(
        spec_file,
        {
            '"data/cifar-10-batches-py"': f'"{data}"',
            "max_guesses 200000": "max_guesses 600",
            "guess_batch 1024": "guess_batch 300",
            "test_limit 1000": "test_limit 40",
            "samples [2, 4, 8, 16, 24]": "samples [2]",
            "trials 4": "trials 1",
            "epochs 2000": "epochs 30",
            "poison_val 64": "poison_val 8\n    poison_steps 50",
        },
    )
    result = threatlang.run(_spec(tmp_path, text), output=tmp_path / "run", quiet=True)
    m = result.summary.metrics
    assert m["loss_bins"][0] == "[0.55, 0.57)"
    assert set(m["accuracy"]) == {"guess_and_check", "sgd"}
    LandscapeSummary(**m)


def test_the_mnist5k_and_table_specs_check():
    for name in ("volume_mnist5k", "volume_width", "volume_digits_ten"):
        spec = threatlang.load(f"specs/{name}.threat")
        assert BACKEND.accepts(spec) == (), name
        assert plan(spec).describe()
