"""Run directories never lose, mix or leak results (issue 15): one spec per directory (checked
on --resume, with what differs said), nothing replaced unless told, one writer at a time,
atomic spec/summary/manifest writes, and a run that fails early leaves the directory alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from threatlang.errors import UsageError

DRIVER = Path(__file__).with_name("driver.py")


def _small(toy, **replace: str) -> str:
    text = toy.SPEC.replace("test_limit 40", "test_limit 8")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def _run(text: str, out: Path, **kw):
    from threatlang.api import run
    from threatlang.parse import parse

    return run(parse(text), output=out, quiet=True, **kw)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def done(toy, tmp_path):
    """A finished small toy run and a snapshot of its files."""
    out = tmp_path / "run"
    _run(_small(toy), out)
    return out, _snapshot(out)


def test_a_run_records_its_spec_seed_and_checkpoints(toy, done):
    out, files = done
    manifest = json.loads(files["manifest.json"])
    from threatlang.parse import parse
    from threatlang.rundir import canonical_spec, file_sha256, spec_hash

    assert manifest["spec_hash"] == spec_hash(canonical_spec(parse(_small(toy))))
    assert manifest["seed"] == 0 and manifest["backend"] == "toy"
    assert manifest["checkpoints"] == {"model.pt": file_sha256(out / "model.pt")}
    assert manifest["finished"] is not None
    assert not [n for n in files if n.endswith(".tmp") or "lock" in n]  # nothing left behind
    # spans are not part of the identity: the same spec reformatted hashes the same
    moved = "# a comment\n\n" + _small(toy).replace("  seed 0\n", "  seed 0\n\n\n")
    assert spec_hash(canonical_spec(parse(moved))) == manifest["spec_hash"]


def test_a_second_run_into_a_finished_directory_is_refused_untouched(toy, done):
    out, files = done
    with pytest.raises(UsageError, match=r"already holds a run of spec 'toy' \(8 records") as e:
        _run(_small(toy), out)
    assert "--resume" in str(e.value) and "--overwrite" in str(e.value)
    assert _snapshot(out) == files


def test_overwrite_replaces_the_run(toy, done):
    out, files = done
    text = _small(toy, **{"radius 0.01": "radius 0.02"})
    result = _run(text, out, overwrite=True)
    assert len(result.records) == 8
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec"]["threat"]["radii"] == [0.02]
    assert (out / "records.jsonl").read_bytes() != files["records.jsonl"]


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ({"radius 0.01": "radius 0.02"}, "the spec differs (threat.radii[0]: 0.01 -> 0.02)"),
        ({"test_limit 8": "test_limit 9"}, "data.test_limit: 8 -> 9"),
        ({"train standard { epochs 4 }": "train standard { epochs 5 }"}, "train.epochs: 4 -> 5"),
        ({"model toy_mlp": "model toy_mlp { width 3 }"}, "model.options.width: none -> 3"),
    ],
)
def test_resume_with_a_different_spec_is_refused_saying_what_differs(toy, done, change, said):
    out, files = done
    with pytest.raises(UsageError) as info:
        _run(_small(toy, **change), out, resume=True)
    assert said in str(info.value) and "--overwrite" in str(info.value)
    assert _snapshot(out) == files  # no spec.json replaced, no record dropped


def test_resume_with_another_seed_is_refused(toy, done):
    out, files = done
    with pytest.raises(UsageError, match="seed: 0 -> 3"):
        _run(_small(toy), out, resume=True, seed=3)
    assert _snapshot(out) == files


def test_resume_refuses_a_checkpoint_changed_or_missing_under_its_records(toy, done):
    out, files = done
    (out / "model.pt").write_bytes(files["model.pt"] + b"\0")
    with pytest.raises(UsageError, match="checkpoint model.pt changed since the run wrote it"):
        _run(_small(toy), out, resume=True)
    (out / "model.pt").unlink()
    with pytest.raises(UsageError, match="checkpoint model.pt that its records came from is"):
        _run(_small(toy), out, resume=True)
    # without records nothing can be mixed: the run retrains and goes on
    (out / "records.jsonl").write_text("")
    assert len(_run(_small(toy), out, resume=True).records) == 8


def test_resume_with_the_same_spec_continues(toy, done):
    out, files = done
    lines = files["records.jsonl"].decode().splitlines(keepends=True)
    (out / "records.jsonl").write_text("".join(lines[:3]))
    (out / "summary.json").unlink()
    result = _run(_small(toy), out, resume=True)
    after = (out / "records.jsonl").read_text().splitlines(keepends=True)
    assert after[:3] == lines[:3]  # kept as they were, not redone

    def outcome(line: str) -> tuple:
        record = json.loads(line)
        return record["id"], record["status"], record["values"]

    assert [outcome(x) for x in after] == [outcome(x) for x in lines]
    assert (
        json.loads((out / "summary.json").read_text())["certified_accuracy"]
        == (json.loads(files["summary.json"])["certified_accuracy"])
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["resumed"]) == 1 and len(result.records) == 8


def test_a_run_that_fails_early_leaves_the_directory_untouched(toy, done):
    out, files = done
    missing = _small(toy, **{"model toy_mlp": 'model state_dict("nope.pt") { arch toy_mlp }'})
    for flags in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(UsageError, match="model file nope.pt not found"):
            _run(missing, out, **flags)
        assert _snapshot(out) == files, flags


def test_a_directory_from_before_manifests_resumes_by_its_spec_json(toy, done):
    out, files = done
    (out / "manifest.json").unlink()
    with pytest.raises(UsageError, match=r"threat.radii\[0\]: 0.01 -> 0.02"):
        _run(_small(toy, **{"radius 0.01": "radius 0.02"}), out, resume=True)
    assert len(_run(_small(toy), out, resume=True).records) == 8
    assert (out / "manifest.json").exists()


def test_a_second_writer_is_refused_and_a_stale_lock_is_taken_over(toy, tmp_path, capsys):
    from threatlang.rundir import LOCK, DirLock

    out = tmp_path / "run"
    out.mkdir()
    held = DirLock(out)
    held.acquire()
    try:
        with pytest.raises(
            UsageError, match=rf"another run \(pid {os.getpid()} on .*\) is writing"
        ):
            _run(_small(toy), out)
    finally:
        held.release()
    assert not (out / LOCK).exists()
    # a lock file left by a killed run names a holder but nobody holds the flock: stale
    (out / LOCK).write_text("pid 999999 on elsewhere since 2020-01-01T00:00:00")
    assert len(_run(_small(toy), out).records) == 8
    assert "no longer running (pid 999999 on elsewhere" in capsys.readouterr().err
    assert not (out / LOCK).exists()


@pytest.mark.slow  # two driver processes at once: ~10 s
def test_two_concurrent_cli_runs_one_is_refused(toy, tmp_path):
    spec = tmp_path / "toy.threat"
    spec.write_text(toy.SPEC)
    out = tmp_path / "run"
    cmd = [sys.executable, str(DRIVER), "run", str(spec), "-o", str(out), "--quiet"]
    env = {**os.environ, "TOY_DELAY": "0.05"}
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = sorted((p.wait(), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    assert "is writing to" in results[1][1] and "Traceback" not in results[1][1]
    ids = [json.loads(x)["id"] for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 40


def test_cli_refusals_are_one_sentence_exit_2(toy, done, capsys):
    from threatlang.cli import main

    out, files = done
    spec = out.parent / "other.threat"
    spec.write_text(_small(toy, **{"radius 0.01": "radius 0.02"}))
    for flags in ([], ["--resume"]):
        assert main(["run", str(spec), "-o", str(out), "-q", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
    assert _snapshot(out) == files
    assert main(["run", str(spec), "-o", str(out), "-q", "--overwrite"]) == 0


def test_atomic_write_keeps_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
    from threatlang import rundir

    path = tmp_path / "summary.json"
    rundir.write_atomic(path, "old\n")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(rundir.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        rundir.write_atomic(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # the temp file is gone


def test_a_directory_with_only_bookkeeping_is_taken_by_a_plain_run(toy, tmp_path):
    """A run that failed before any result (say, in training) blocks nobody."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "spec.json").write_text("{}")
    (out / "records.jsonl").write_text("")
    assert len(_run(_small(toy), out).records) == 8


def test_differences_read_like_the_spec():
    from threatlang.parse import parse
    from threatlang.rundir import canonical_spec, differences

    base = """spec s {
  model mlp255
  data digits
  threat patch { shape square(2) }
  require label_unchanged
  train all_patch { epochs 2 }
  certify ibp
}
"""
    a = canonical_spec(parse(base))
    b = canonical_spec(parse(base.replace("square(2)", "square(3)")))
    assert differences(a, b) == ["threat.shapes[0].n: 2 -> 3"]
    c = canonical_spec(parse(base.replace("  certify ibp\n", "")))
    assert differences(a, c) == ["certify: Certify(method=ibp) -> none"]
    d = canonical_spec(parse(base.replace("square(2)", "rectangle(2, 3)")))
    assert differences(a, d)[0].startswith("threat.shapes[0]: Square(n=2) -> Rectangle(")
