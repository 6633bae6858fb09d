"""The command line: exit codes, error output without tracebacks, compile output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from threatlang.cli import main

ROOT = Path(__file__).parents[2]


def test_check_ok_and_bad(tmp_path, capsys):
    assert main(["check", str(ROOT / "specs")]) == 0
    bad = tmp_path / "bad.threat"
    line = "  threat patch { shape square(2), values [1, 0] }"
    bad.write_text(f"spec s {{\n  model small_cnn\n  data digits\n{line}\n  train all_patch\n}}\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:4:{line.index('values') + 1}: error:" in err
    assert "Traceback" not in err
    assert "^" in err


def test_missing_file_is_one_sentence(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope.threat")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "no such spec file" in err and "\n" not in err


def test_compile_json_loads_back(tmp_path):
    out = tmp_path / "q.json"
    assert (
        main(["compile", str(ROOT / "specs/quickstart.threat"), "--emit", "json", "-o", str(out)])
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["format"] == "threatlang-ir/1"
    assert doc["specs"][0]["threat"]["node"] == "PatchSet"


def test_console_script_version_and_exit_code():
    proc = subprocess.run(
        [sys.executable, "-m", "threatlang", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("threatlang ")
    proc = subprocess.run(
        [sys.executable, "-m", "threatlang", "check", "-"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("flag", ["--help"])
def test_help(flag, capsys):
    with pytest.raises(SystemExit) as info:
        main([flag])
    assert info.value.code == 0
    assert "check" in capsys.readouterr().out


def test_capability_error_names_the_spec_line(tmp_path, capsys, monkeypatch):
    from threatlang.backends import base, registry

    class OnlyCertify(base.Backend):
        name = "only_certify"
        capabilities = base.Capabilities(families={"input ball"})

        def compile(self, spec):  # pragma: no cover - never reached
            raise AssertionError

    monkeypatch.setattr(registry, "backends", lambda: (OnlyCertify(),))
    code = main(["run", str(ROOT / "specs/quickstart.threat"), "-o", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert (
        "no installed backend handles patch threats" in err
        and "quickstart.threat:13:3" in err
        and "certify ibp" in err
    )


def test_check_reports_backend_option_typos_without_torch(tmp_path):
    text = (
        (ROOT / "specs/quickstart.threat").read_text().replace("lr 0.002", "lr 0.002\n    paatch 3")
    )
    spec = tmp_path / "typo.threat"
    spec.write_text(text)
    code = (
        "import sys, threatlang.cli as c\n"
        f"rc = c.main(['check', {str(spec)!r}])\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.split() == ["2", "False"]
    assert "unknown option 'paatch'" in proc.stderr and "typo.threat:23:5" in proc.stderr
