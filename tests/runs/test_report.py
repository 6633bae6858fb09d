"""`threatlang report RUN_DIR` rebuilds tables and plots from records.jsonl alone."""

from __future__ import annotations

from pathlib import Path

from threatlang.cli import main
from threatlang.plots import patch_curve, radius_curve, record_tables
from threatlang.records import RecordLog
from threatlang.report import Record, Status

PNG = b"\x89PNG\r\n\x1a\n"


def _ball_records():
    radii = [0.0, 0.1, 0.2]
    out = []
    for i in range(10):
        at = [True, i < 6, i < 3]
        status = Status.CERTIFIED if all(at) else Status.UNKNOWN
        out.append(
            Record(
                f"test-{i}",
                status,
                {"radii": radii, "certified_at": at, "margin_lower": 0.1 * i - 0.3},
                0.01 * (i + 1),
                reason=None if status is Status.CERTIFIED else "bound inconclusive",
            )
        )
    return out


def test_radius_curve_counts_each_radius():
    assert radius_curve(_ball_records()) == [(0.0, 1.0), (0.1, 0.6), (0.2, 0.3)]
    smoothed = [
        Record(f"s{i}", Status.CERTIFIED, {"certified_radius": r}) for i, r in enumerate([0.5, 1.0])
    ] + [Record("s2", Status.UNKNOWN, {"certified_radius": None}, reason="abstain")]
    assert radius_curve(smoothed) == [(0.0, 2 / 3), (0.5, 2 / 3), (1.0, 1 / 3)]
    patches = [
        Record("a", Status.CERTIFIED, {"patch_size": 2}),
        Record("b", Status.UNKNOWN, {"patch_size": 4}, reason="x"),
        Record("c", Status.CERTIFIED, {"patch_size": 4}),
    ]
    assert patch_curve(patches) == [(2.0, 1.0), (4.0, 0.5)]


def test_report_rebuilds_tables_and_plots_from_records(tmp_path, capsys):
    log = RecordLog(tmp_path / "records.jsonl")
    for r in _ball_records():
        log.append(r)
    for i, regret in enumerate([0.0, 0.01, 0.03]):
        log.append(Record(f"profile-{i}", Status.CERTIFIED, {"certified_regret": regret}))
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "records by status" in out and "certified accuracy by radius" in out
    assert "certified_regret" in out
    names = {p.name for p in (tmp_path / "report").iterdir()}
    assert {
        "status.png",
        "certified_vs_radius.png",
        "hist_certified_regret.png",
        "hist_margin_lower.png",
        "seconds.png",
    } <= names
    for p in (tmp_path / "report").iterdir():
        assert p.read_bytes()[:8] == PNG
    titles = [t.title for t in record_tables(log.all())]
    assert titles[0] == "records by status"


def test_accuracies_reported_per_radius_are_plotted(tmp_path):
    from threatlang.plots import accuracy_by_radius, render_plots

    records = [
        Record(f"radius={r}", Status.CERTIFIED, {"radius": r, "certified_trigger_accuracy": a})
        for r, a in ((0.5, 0.9), (0.1, 1.0), (1.0, 0.4))
    ]
    assert accuracy_by_radius(records) == {
        "certified_trigger_accuracy": [(0.1, 1.0), (0.5, 0.9), (1.0, 0.4)]
    }
    names = {p.name for p in render_plots(records, tmp_path)}
    assert "reported_accuracy_vs_radius.png" in names


def test_report_of_an_empty_directory_is_a_usage_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "records.jsonl" in capsys.readouterr().err


def test_report_compares_runs_by_patch_size(tmp_path, capsys):
    import json

    from threatlang.parse import parse
    from threatlang.serialize import document

    text = """spec p{n} {{
  model small_cnn
  data digits
  threat patch {{ shape square({n}) }}
  require label_unchanged
  train all_patch
  certify ibp
}}
"""
    dirs = []
    for n, certified in ((2, 8), (4, 5), (6, 1)):
        run = tmp_path / f"p{n}"
        run.mkdir()
        (run / "spec.json").write_text(json.dumps(document([parse(text.format(n=n))])))
        log = RecordLog(run / "records.jsonl")
        for i in range(10):
            status = Status.CERTIFIED if i < certified else Status.UNKNOWN
            log.append(Record(f"t{i}", status, {}, reason=None if i < certified else "bound"))
        dirs.append(str(run))
    assert main(["report", *dirs, "--plots", str(tmp_path / "cmp")]) == 0
    out = capsys.readouterr().out
    assert "certified accuracy by patch size" in out
    assert (tmp_path / "cmp" / "compare_certified_vs_patch_size.png").read_bytes()[:8] == PNG
    from threatlang.plots import compare_runs
    from threatlang.records import read_records

    runs = [(p, read_records(p / "records.jsonl")) for p in map(Path, dirs)]
    (table,), _ = compare_runs(runs, tmp_path / "again")
    assert [row[:2] for row in table.rows] == [(2.0, 0.8), (4.0, 0.5), (6.0, 0.1)]
