"""Hostile and careless inputs (issue 15): each ends in one sentence that names the file and
the problem, exit code 2, no traceback, nothing run from a file and nothing lost.

Three tables: command lines (through `threatlang.cli.main`), data files (through
`load_dataset`) and model files (through `load_model`).
"""

from __future__ import annotations

import functools
import json
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from threatlang.cli import main
from threatlang.data import load_dataset
from threatlang.errors import UsageError
from threatlang.ir import DataRef

RUNS = Path(__file__).parents[1] / "runs"
#: `run` cases use the toy backend of tests/runs (installed as a plugin by `toy`), so they
#: test the core's I/O, not a shipped backend
TINY = """threatlang 1
spec tiny {
  model toy_mlp
  data DATA
  seed 0
  threat linf_ball { radius 0.01 }
  require label_unchanged
  train standard { epochs 1 }
  certify ibp
}
"""
CIFAR_BATCHES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


def _spec(tmp: Path, data: str = "digits { test_limit 4 }", model: str | None = None) -> str:
    text = TINY.replace("DATA", data)
    if model is not None:
        text = text.replace("model toy_mlp", model)
    path = tmp / "s.threat"
    path.write_text(text)
    return str(path)


class _Marker:
    """Unpickling this creates the marker file: what a crafted CIFAR-10 batch would run."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _crafted_cifar(tmp: Path) -> Path:
    folder = tmp / "cifar"
    folder.mkdir()
    for name in CIFAR_BATCHES:
        payload = {b"data": _Marker(tmp / "PWNED"), b"labels": [0]}
        (folder / name).write_bytes(pickle.dumps(payload, protocol=2))
    return folder


def _no_marker(tmp: Path) -> None:
    assert not (tmp / "PWNED").exists(), "the crafted pickle ran code"


def _cifar_run(tmp: Path) -> list[str]:
    spec = _spec(tmp, f'cifar10 {{ path "{_crafted_cifar(tmp)}"; test_limit 2 }}')
    return ["run", spec, "-o", str(tmp / "run"), "--quiet"]


def _cifar_vnnlib(tmp: Path) -> list[str]:
    spec = _spec(tmp, f'cifar10 {{ path "{_crafted_cifar(tmp)}"; test_limit 2 }}')
    text = Path(spec).read_text().replace("model toy_mlp", "model mlp255 { width 0.1 }")
    Path(spec).write_text(text)  # a shipped architecture: the exporter builds it
    return ["compile", spec, "--emit", "vnnlib", "-o", str(tmp / "v"), "--limit", "1"]


def _file(tmp: Path, name: str = "afile", text: str = "x") -> Path:
    (tmp / name).write_text(text)
    return tmp / name


def _report_dir(tmp: Path, summary: str | None = None, records: str | None = None) -> list[str]:
    run = tmp / "run"
    run.mkdir()
    if summary is not None:
        (run / "summary.json").write_text(summary)
    if records is not None:
        (run / "records.jsonl").write_text(records)
    return ["report", str(run), "--no-plots"]


def _read_only(tmp: Path) -> list[str]:
    folder = tmp / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    return ["run", _spec(tmp), "-o", str(folder / "run"), "--quiet"]


GOOD = '{"id": "a", "status": "certified"}'

#: (argv builder, fragments the one-line error must contain, check afterwards)
CLI_CASES: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...], Callable | None]] = {
    "run: crafted CIFAR-10 pickle": (
        _cifar_run,
        ("data_batch_1", "not a CIFAR-10 python batch", "nothing from the file was run"),
        _no_marker,
    ),
    "compile --emit vnnlib: crafted CIFAR-10 pickle": (
        _cifar_vnnlib,
        ("data_batch_1", "not a CIFAR-10 python batch"),
        _no_marker,
    ),
    "run --output is a file": (
        lambda t: ["run", _spec(t), "-o", str(_file(t)), "-q"],
        ("afile is a file, not a directory",),
        None,
    ),
    "run --output under a file": (
        lambda t: ["run", _spec(t), "-o", str(_file(t) / "sub"), "-q"],
        ("cannot be created", "afile is a file"),
        None,
    ),
    "run --output in a read-only folder": (_read_only, ("permission denied",), None),
    "run --resume --overwrite": (
        lambda t: ["run", _spec(t), "-o", str(t / "r"), "--resume", "--overwrite", "-q"],
        ("pass one",),
        None,
    ),
    "run into a folder of other files": (
        lambda t: ["run", _spec(t), "-o", str(_file(t, "notes.txt").parent), "-q"],
        ("already holds", "notes.txt", "--resume", "--overwrite"),
        None,
    ),
    "run --overwrite a folder that is not a run": (
        lambda t: ["run", _spec(t), "-o", str(_file(t, "notes.txt").parent), "-q", "--overwrite"],
        ("is not a run directory", "notes.txt"),
        lambda t: (t / "notes.txt").exists() or pytest.fail("--overwrite deleted a user file"),
    ),
    "run: model file missing": (
        lambda t: [
            "run",
            _spec(t, model='model state_dict("nope.pt") { arch toy_mlp }'),
            "-o",
            str(t / "r"),
            "-q",
        ],
        ("model file nope.pt not found",),
        lambda t: (t / "r").exists() and pytest.fail("a failed run created its directory"),
    ),
    "run: npz data file missing": (
        lambda t: ["run", _spec(t, 'npz { path "nope.npz" }'), "-o", str(t / "r"), "-q"],
        ("nope.npz not found",),
        None,
    ),
    "compile --output is a directory": (
        lambda t: ["compile", _spec(t), "--emit", "json", "-o", str(t)],
        ("is a directory", "give a file name"),
        None,
    ),
    "compile --output under a file": (
        lambda t: ["compile", _spec(t), "--emit", "json", "-o", str(_file(t) / "x.json")],
        ("afile is a file",),
        None,
    ),
    "compile --emit vnnlib --output is a file": (
        lambda t: ["compile", _spec(t), "--emit", "vnnlib", "-o", str(_file(t))],
        ("is a file, not a directory",),
        None,
    ),
    "report: summary.json is not JSON": (
        lambda t: _report_dir(t, summary='{"spec": "x", '),
        ("summary.json is not a readable run summary", "line 1, column 15"),
        None,
    ),
    "report: summary.json is a list": (
        lambda t: _report_dir(t, summary="[1, 2]"),
        ("summary.json", "not an object"),
        None,
    ),
    "report: summary.json with a malformed table": (
        lambda t: _report_dir(t, summary='{"tables": [{"title": "t"}]}'),
        ("summary.json", "malformed table"),
        None,
    ),
    "report: records.jsonl broken in the middle": (
        lambda t: _report_dir(t, records=f"{GOOD}\n{{oops\n{GOOD.replace('a', 'b')}\n"),
        ("records.jsonl:2:", "not a valid record"),
        None,
    ),
}


@pytest.fixture
def toy(install_plugin):
    install_plugin(RUNS, {"toy": "toy_backend:BACKEND"})


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_command_line_bad_input_is_one_sentence_exit_2(case, tmp_path, capsys, monkeypatch, toy):
    if case == "run --output in a read-only folder" and os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; see the simulated test below")
    monkeypatch.chdir(tmp_path)
    build, fragments, after = CLI_CASES[case]
    argv = build(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    if after is not None:
        after(tmp_path)


def test_output_that_cannot_be_written_is_one_sentence(tmp_path, capsys, monkeypatch, toy):
    """The read-only case for a root user: the permission check itself is exercised."""
    real = os.access
    target = tmp_path / "ro"
    target.mkdir()
    monkeypatch.setattr(os, "access", lambda p, m: False if Path(p) == target else real(p, m))
    assert main(["run", _spec(tmp_path), "-o", str(target), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: --output {target} is not writable; pick another --output."


def test_import_vnnlib_output_folder_is_created_before_the_import(tmp_path, monkeypatch, toy):
    from threatlang.interop import import_vnnlib as module

    def fake(path, output, **kw):  # stands in for the converter: needs the folder to exist
        out = Path(output)
        out.write_text(TINY.replace("DATA", "digits"))
        return out

    monkeypatch.setattr(module, "import_vnnlib", fake)
    target = tmp_path / "no" / "such" / "folder" / "x.threat"
    assert main(["import-vnnlib", str(tmp_path / "i.csv"), "-o", str(target)]) == 0
    assert target.exists()


@pytest.mark.slow  # exports an ONNX model and reads it back: ~6 s
def test_import_vnnlib_creates_the_output_folder(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    from threatlang.models_io import build_builtin

    weights = tmp_path / "w.pt"
    torch.save(build_builtin("mlp255", (1, 8, 8), 10, {"width": 0.1}).state_dict(), weights)
    spec = _spec(tmp_path, model="model mlp255 { width 0.1 }")
    out = tmp_path / "v"
    flags = ["--emit", "vnnlib", "-o", str(out), "--limit", "1", "--weights", str(weights)]
    assert main(["compile", spec, *flags]) == 0
    target = tmp_path / "no" / "such" / "folder" / "x.threat"
    assert main(["import-vnnlib", str(out / "instances.csv"), "-o", str(target)]) == 0, (
        capsys.readouterr().err
    )
    assert target.exists()


# ------------------------------------------------------------------------- data files
def _npz(**change) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        rng = np.random.default_rng(0)
        arrays = {
            "x_train": rng.random((8, 1, 4, 4)),
            "y_train": np.arange(8) % 3,
            "x_test": rng.random((3, 1, 4, 4)),
            "y_test": np.arange(3),
        }
        path = tmp / "d.npz"
        np.savez(path, **{**arrays, **change})
        return path

    return make


def _npz_of(**arrays) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        np.savez(tmp / "d.npz", **arrays)
        return tmp / "d.npz"

    return make


def _raw(content: bytes, name: str = "d.npz") -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(content)
        return tmp / name

    return make


def _truncated_npz(tmp: Path) -> Path:
    whole = _npz()(tmp).read_bytes()
    (tmp / "d.npz").write_bytes(whole[: len(whole) // 2])
    return tmp / "d.npz"


def _npy(tmp: Path) -> Path:
    np.save(tmp / "d.npy", np.zeros(3))
    return tmp / "d.npy"


NAN_X = np.full((8, 1, 4, 4), 0.5)
NAN_X[2, 0, 1, 1] = np.nan

#: npz file -> fragments of the one-sentence error (besides the file's name)
DATA_CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "NaN pixel": (_npz(x_train=NAN_X), ("x_train", "1 NaN or infinite", "(2, 0, 1, 1)")),
    "inf pixel": (_npz(x_test=np.full((3, 1, 4, 4), np.inf)), ("x_test", "NaN or infinite")),
    "float overflowing float32": (_npz(x_test=np.full((3, 4, 4), 1e300)), ("too large",)),
    "label 4.5": (_npz(y_train=np.full(8, 4.5)), ("non-integer labels (4.5 at index 0)",)),
    "NaN label": (_npz(y_test=np.array([0.0, np.nan, 1.0])), ("non-integer labels",)),
    "complex images": (_npz(x_train=np.ones((8, 1, 4, 4)) + 1j), ("complex",)),
    "5-D images": (_npz(x_train=np.ones((8, 1, 1, 4, 4))), ("shape (8, 1, 1, 4, 4)",)),
    "1-D images": (_npz(x_test=np.ones(3)), ("shape (3,)",)),
    "negative labels": (_npz(y_train=-np.ones(8, int)), ("negative labels (-1 at index 0)",)),
    "huge label": (_npz(y_test=np.array([0, 1, 10**9])), ("label 1000000000",)),
    "length mismatch": (_npz(y_train=np.arange(5)), ("x_train has 8 examples but y_train has 5",)),
    "2-D labels": (_npz(y_test=np.zeros((3, 2), int)), ("y_test has shape (3, 2)",)),
    "string labels": (_npz(y_train=np.array(list("abcdefgh"))), ("text labels ('a' at index 0)",)),
    "object arrays": (_npz(y_test=np.array([0, None, 1], dtype=object)), ("pickled",)),
    "empty test set": (
        _npz(x_test=np.zeros((0, 1, 4, 4)), y_test=np.zeros(0, int)),
        ("test set (x_test) is empty",),
    ),
    "mismatched image shapes": (_npz(x_test=np.ones((3, 1, 5, 5))), ("same shape",)),
    "missing arrays": (_npz_of(x_train=np.ones((2, 4)), y_train=np.arange(2)), ("lacks arrays",)),
    "not a zip file": (_raw(b"hello, world"), ("not an .npz archive (not a zip file)",)),
    "truncated zip": (_truncated_npz, ("not a readable .npz archive",)),
    "a .npy file": (_npy, ("single .npy array",)),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_npz_bad_input_names_the_file_and_the_problem(case, tmp_path):
    make, fragments = DATA_CASES[case]
    path = make(tmp_path)
    with pytest.raises(UsageError) as info:
        load_dataset(DataRef("npz", path=str(path)))
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_npz_labels_saved_as_whole_floats_and_empty_train_split_still_load(tmp_path):
    rng = np.random.default_rng(0)
    make = _npz_of(
        x_train=np.zeros((0, 1, 4, 4)),
        y_train=np.zeros(0),
        x_test=rng.random((3, 1, 4, 4)),
        y_test=np.array([0.0, 2.0, 1.0]),
    )
    d = load_dataset(DataRef("npz", path=str(make(tmp_path))))
    assert d.test.y.tolist() == [0, 2, 1] and d.test.y.dtype == np.int64
    assert len(d.train) == 0 and d.num_classes == 3


def test_cifar_batches_with_wrong_content_name_the_file(tmp_path):
    from threatlang.data.files import read_cifar_batch

    cases = {
        "not a dict": ([1, 2], "holds a list"),
        "no labels": ({b"data": np.zeros((1, 3072), np.uint8)}, "lacks"),
        "wrong width": ({b"data": np.zeros((1, 10), np.uint8), b"labels": [0]}, "3072"),
        "float pixels": ({b"data": np.zeros((1, 3072)), b"labels": [0]}, "uint8"),
        "label 10": ({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}, "outside 0..9"),
        "count mismatch": ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}, "2 images"),
        "str labels": ({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["a"]}, "integers"),
    }
    for name, (payload, fragment) in cases.items():
        path = tmp_path / name.replace(" ", "_")
        path.write_bytes(pickle.dumps(payload, protocol=2))
        with pytest.raises(UsageError, match=fragment) as info:
            read_cifar_batch(path)
        assert str(path) in str(info.value), name
    (tmp_path / "torn").write_bytes(pickle.dumps(cases["no labels"][0], protocol=2)[:40])
    with pytest.raises(UsageError, match="unreadable pickle"):
        read_cifar_batch(tmp_path / "torn")


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("bad magic", b"\x01\x02\x03\x04", "bad magic number"),
        ("unknown type", b"\x00\x00\x42\x01\x00\x00\x00\x01\x00", "bad magic number"),
        ("cut header", b"\x00\x00\x08\x03\x00\x00", "header is cut short"),
        ("cut data", b"\x00\x00\x08\x01\x00\x00\x00\x05\x01\x02", "truncated or corrupt"),
    ],
)
def test_idx_files_that_are_cut_or_foreign(tmp_path, name, content, fragment):
    from threatlang.data.files import read_idx

    path = tmp_path / "x-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(UsageError, match=fragment) as info:
        read_idx(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------ model files
def _torch_file(cut: int) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        import torch

        torch.save({"w": torch.zeros(1000)}, tmp / "full.pt")
        whole = (tmp / "full.pt").read_bytes()
        (tmp / "m.pt").write_bytes(whole[:cut])
        return tmp / "m.pt"

    return make


MODEL_CASES = {
    # torch reports these as EINVAL, "failed finding central directory" or an empty read
    "state dict cut near its end": ("state_dict", _torch_file(-100), "not a complete torch.save"),
    "state dict cut in half": ("state_dict", _torch_file(2000), "not a complete torch.save"),
    "empty state dict file": ("state_dict", _raw(b"", "m.pt"), "not a complete torch.save"),
    "empty ONNX file": ("onnx", _raw(b"", "m.onnx"), "not a valid ONNX model: "),
    "garbage ONNX file": ("onnx", _raw(b"\x00garbage" * 10, "m.onnx"), "not a valid ONNX model: "),
    "truncated TorchScript": ("torchscript", _torch_file(-100), "is not a TorchScript file"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_model_file_bad_input_names_the_file(case, tmp_path):
    pytest.importorskip("torch")
    from threatlang.ir import ModelKind, ModelRef
    from threatlang.models_io import load_model

    kind, make, fragment = MODEL_CASES[case]
    if kind == "onnx":
        pytest.importorskip("onnx")
    path = make(tmp_path)
    arch = "mlp255" if kind == "state_dict" else None
    with pytest.raises(UsageError) as info:
        ref = ModelRef(ModelKind(kind), str(path), arch=arch)
        load_model(ref, (1, 8, 8), 10, allow_code=kind == "torchscript")
    message = str(info.value)
    assert fragment in message and str(path) in message and "\n" not in message, message


# --------------------------------------------------------------------- error echoing
def test_a_200_kb_source_line_is_echoed_clipped_around_the_column(tmp_path, capsys):
    deep = tmp_path / "deep.threat"
    deep.write_text("spec s { model mlp255; seed " + "(" * 100_000 + "1" + ")" * 100_000 + " }\n")
    assert main(["check", str(deep)]) == 2
    err = capsys.readouterr().err
    assert len(err) < 1000, len(err)  # was 300 KB
    head, echo, caret, *_ = err.splitlines()
    column = int(head.split(":")[2])
    gutter = echo.index("| ") + 2
    assert echo[gutter] == "…" and echo.endswith("…")
    # the caret still points at the character the message is about
    assert echo[caret.index("^")] == deep.read_text()[column - 1]


def test_error_echo_of_short_lines_is_unchanged(tmp_path, capsys):
    bad = tmp_path / "bad.threat"
    line = "  threat patch { shape square(2), values [1, 0] }"
    bad.write_text(f"spec s {{\n  model small_cnn\n  data digits\n{line}\n  train all_patch\n}}\n")
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[1] == f"    4 | {line}"
    assert err[2].index("^") == err[1].index("values")


def test_summary_report_reads_back_after_an_atomic_write(tmp_path):
    from threatlang.report import Summary, Table, write_summary

    path = tmp_path / "summary.json"
    write_summary(path, Summary({"a": 1.0}, (Table("t", ["x"], [[1]]),)), "s", "b")
    assert json.loads(path.read_text())["a"] == 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temp left


# ------------------------------------------------------- hostile files, round two (issue 21)
#: the declarations of a 5-input, 3-output VNN-COMP property, and a box around 0.5
DECLARE = "".join(f"(declare-const X_{i} Real)\n" for i in range(5)) + "".join(
    f"(declare-const Y_{j} Real)\n" for j in range(3)
)
BOX = "".join(f"(assert (<= X_{i} 0.6))\n(assert (>= X_{i} 0.4))\n" for i in range(5))
UNSAFE = "(assert (or (and (>= Y_1 Y_0)) (and (>= Y_2 Y_0))))\n"


def _prop(body: str, declare: str = DECLARE) -> str:
    return declare + BOX + body + UNSAFE


V2 = "(declare-network n (declare-input X Real [1, 5]) (declare-output Y Real [1, 3]))\n"

#: VNN-LIB text -> fragments of the one-sentence error (`read`, and import-vnnlib below)
VNNLIB_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "empty (assert)": (_prop("(assert)\n"), ("(assert ...) takes one formula",)),
    "empty (declare-const)": (_prop("", DECLARE + "(declare-const)\n"), ("not a declaration",)),
    "one-argument (<= X_0)": (_prop("(assert (<= X_0))\n"), ("compares two expressions",)),
    "empty (+)": (_prop("(assert (<= (+) 1))\n"), ("(+) needs at least one argument",)),
    "the number 1.2.3": (_prop("(assert (<= X_0 1.2.3))\n"), ("'1.2.3' is neither a number",)),
    "the number -": (_prop("(assert (<= X_0 -))\n"), ("'-' is neither a number",)),
    "the name X_abc": (
        _prop("", DECLARE + "(declare-const X_abc Real)\n"),
        ("'X_abc' is neither an input X_i nor an output Y_j",),
    ),
    "the name X[a,b]": (
        V2 + "(assert (<= X[a,b] 1))\n" + "(assert (<= Y[0,0] 1))\n",
        ("'X[a,b]' needs 2 whole-number indices",),
    ),
    "X_9 used with 5 inputs": (_prop("(assert (<= X_9 1))\n"), ("'X_9' is neither a number",)),
    "X_9 declared with 4 others": (
        DECLARE.replace("X_4 Real", "X_9 Real") + UNSAFE,
        ("X_9 is declared, but there are only 5 inputs",),
    ),
    "no declared input": (
        "(declare-const Y_0 Real)\n(assert (<= Y_0 1))\n",
        ("declares no input X_i",),
    ),
    "NaN bound": (_prop("(assert (<= X_0 nan))\n"), ("'nan' is neither a number",)),
    "overflowing bound": (_prop("(assert (<= X_0 1e999))\n"), ("too large",)),
    "inverted bounds": (
        _prop("(assert (<= X_0 0.2))\n"),
        ("input X_0 has lower bound 0.4 above its upper bound 0.2",),
    ),
    "40 asserts (or a b)": (
        _prop("(assert (or (<= X_1 0.5) (>= X_1 0.55)))\n" * 40),
        ("multiply out to more than 10,000 cases",),
    ),
    "10^12 declared inputs": (
        "(declare-network n (declare-input X Real [1000000, 1000000]) "
        "(declare-output Y Real [1, 3]))\n(assert (<= Y[0,0] 1))\n",
        ("declares 1,000,000,000,000 variables",),
    ),
    "a huge unknown token": (_prop("(assert (<= X_0 " + "z" * 100_000 + "))\n"), ("…",)),
    "a file that is not VNN-LIB": (
        "root:x:0:0:root:/root:/bin/bash\n",
        ("a token that is not VNN-LIB (not shown)",),
    ),
}


@pytest.mark.parametrize("case", list(VNNLIB_CASES))
def test_vnnlib_reader_bad_input_is_one_usage_error(case):
    from threatlang.interop.vnnlib_read import read

    text, fragments = VNNLIB_CASES[case]
    with pytest.raises(UsageError) as info:
        read(text)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400 and "root:" not in message, message
    for fragment in fragments:
        assert fragment in message, message


def test_vnnlib_reader_is_linear_in_the_number_of_asserts():
    """60,000 bound asserts (3 MB): the old reader copied its growing list per assert
    (quadratic: minutes); now the bounds narrow in place. Checked by the answer, not a timer:
    the CLI table below runs the same reader under a timeout."""
    from threatlang.interop.vnnlib_read import read

    body = "".join(f"(assert (<= X_{i % 5} {0.59 - i * 1e-7!r}))\n" for i in range(60_000))
    query = read(DECLARE + BOX + body + UNSAFE)
    (box,) = query.boxes
    assert box.hi.tolist() == pytest.approx([0.59 - (59_995 + i) * 1e-7 for i in range(5)])
    assert box.lo.tolist() == [0.4] * 5


# The command-line cases run in one child process under a memory limit (address space) and a
# per-case alarm: a reader that hangs or allocates terabytes fails its case instead of the
# machine.
MEMORY_LIMIT = 3 << 30
CASE_SECONDS = 60
DRIVER = r"""
import contextlib, io, json, os, signal, sys
from threatlang.cli import main
cases, results = json.load(open(sys.argv[1])), {}
def alarm(*_):
    raise TimeoutError("the case ran past its time limit")
signal.signal(signal.SIGALRM, alarm)
for name, (argv, cwd) in cases.items():
    os.chdir(cwd)
    err, out = io.StringIO(), io.StringIO()
    signal.alarm(int(sys.argv[3]))
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(argv)
    except BaseException as e:
        code = f"{type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
    results[name] = {"code": code, "err": err.getvalue(), "out": out.getvalue()}
json.dump(results, open(sys.argv[2], "w"))
"""


def _net5(tmp: Path) -> Path:
    import torch
    from torch import nn

    from threatlang.interop.onnx_export import export_onnx

    path = tmp / "net.onnx"
    if not path.exists():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
        export_onnx(net, (5,), path)
    return path


def _import(tmp: Path, text: str | bytes, name: str = "p.vnnlib") -> list[str]:
    prop = tmp / name
    prop.write_bytes(text if isinstance(text, bytes) else text.encode())
    return ["import-vnnlib", str(prop), "--onnx", str(_net5(tmp)), "-o", str(tmp / "o.threat")]


def _csv(tmp: Path, rows: str) -> list[str]:
    folder = tmp / "bench"
    folder.mkdir(exist_ok=True)
    (folder / "net.onnx").write_bytes(_net5(tmp).read_bytes())
    (folder / "p.vnnlib").write_text(_prop(""))
    (tmp / "outside").mkdir(exist_ok=True)
    (tmp / "outside" / "x.onnx").write_bytes(_net5(tmp).read_bytes())
    (folder / "instances.csv").write_text(rows)
    return ["import-vnnlib", str(folder / "instances.csv"), "-o", str(tmp / "o.threat")]


def _gzip_bomb(tmp: Path) -> list[str]:
    import gzip

    with gzip.open(tmp / "p.vnnlib.gz", "wb", compresslevel=1) as fh:
        chunk = b" " * (1 << 20)
        for _ in range(129):  # 129 MB of blanks in a ~130 KB file
            fh.write(chunk)
    return ["import-vnnlib", str(tmp / "p.vnnlib.gz"), "--onnx", str(_net5(tmp)), "-o", "o.threat"]


def _unknown_op_onnx(tmp: Path, op: str = "FrobnicateAll", dims=(1, 5)) -> list[str]:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, str(tmp / "odd.onnx"))
    (tmp / "p.vnnlib").write_text(_prop(""))
    return [
        "import-vnnlib",
        str(tmp / "p.vnnlib"),
        "--onnx",
        str(tmp / "odd.onnx"),
        "-o",
        "o.threat",
    ]


MARKER = "PWNED_BY_TORCHSCRIPT"


def _evil_torchscript(tmp: Path) -> Path:
    """A TorchScript module whose forward creates a file (torch.from_file with shared=True)."""
    import torch
    from torch import nn

    class Evil(nn.Module):
        def __init__(self, marker: str):
            super().__init__()
            self.layer = nn.Linear(64, 10)
            self.marker = marker

        def forward(self, x):
            torch.from_file(self.marker, True, 8, dtype=torch.uint8).fill_(65)
            return self.layer(x.flatten(1))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates TorchScript
        torch.jit.script(Evil(str(tmp / MARKER))).save(str(tmp / "evil.pt"))
    return tmp / "evil.pt"


def _evil_run(tmp: Path, emit: bool = False) -> list[str]:
    spec = _spec(tmp, model=f'model torchscript("{_evil_torchscript(tmp)}")')
    text = Path(spec).read_text().replace("  train standard { epochs 1 }\n", "")
    Path(spec).write_text(text)
    if emit:
        return ["compile", spec, "--emit", "vnnlib", "-o", str(tmp / "v"), "--limit", "1"]
    return ["run", spec, "-o", str(tmp / "run"), "-q"]


def _torchscript_as_state_dict(tmp: Path) -> list[str]:
    import torch
    from torch import nn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch deprecates TorchScript
        torch.jit.script(nn.Sequential(nn.Flatten(), nn.Linear(64, 10))).save(str(tmp / "m.pt"))
    spec = _spec(tmp, model='model state_dict("m.pt") { arch mlp255 }')
    text = Path(spec).read_text().replace("  train standard { epochs 1 }\n", "")
    Path(spec).write_text(text)
    return ["run", spec, "-o", str(tmp / "run"), "-q"]


def _flat_npz_run(tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    np.savez(
        tmp / "flat.npz",
        x_train=rng.random((12, 64)),
        y_train=np.arange(12) % 3,
        x_test=rng.random((3, 64)),
        y_test=np.arange(3),
    )
    spec = _spec(tmp, f'npz {{ path "{tmp / "flat.npz"}" }}', model="model small_cnn")
    return ["run", spec, "-o", str(tmp / "run"), "-q"]


def _nothing_written(tmp: Path) -> None:
    assert not (tmp / "o.threat").exists(), "a refused import left a .threat behind"
    assert not (tmp / "o.npz").exists()


def _no_torchscript_marker(tmp: Path) -> None:
    assert not (tmp / MARKER).exists(), "the TorchScript archive ran code without --allow-code"


#: argv builder, fragments of the one-line error, check afterwards, text the error must not show
Hostile = tuple[Callable[[Path], list[str]], tuple[str, ...], Callable | None, str | None]
HOSTILE_CLI_CASES: dict[str, Hostile] = {
    **{
        f"import-vnnlib: {name}": (
            functools.partial(_import, text=text),
            ("p.vnnlib: VNN-LIB: ", *fragments),
            _nothing_written,
            None,
        )
        for name, (text, fragments) in VNNLIB_CASES.items()
    },
    "import-vnnlib: an input without a lower bound": (
        functools.partial(_import, text=_prop("").replace("(assert (>= X_4 0.4))\n", "")),
        ("p.vnnlib: input X_4 has no lower bound",),
        _nothing_written,
        None,
    ),
    "import-vnnlib: a gzip bomb": (_gzip_bomb, ("p.vnnlib.gz", "more than 128 MB"), None, None),
    "import-vnnlib: a .gz file that is not gzip": (
        functools.partial(_import, text=_prop(""), name="p.vnnlib.gz"),
        ("p.vnnlib.gz is not a complete gzip file",),
        _nothing_written,
        None,
    ),
    "import-vnnlib: Latin-1 text": (
        functools.partial(_import, text="; caf\xe9\n".encode("latin-1") + _prop("").encode()),
        ("p.vnnlib is not UTF-8 text",),
        _nothing_written,
        None,
    ),
    "import-vnnlib: a directory": (
        lambda t: ["import-vnnlib", str(t), "--onnx", str(_net5(t)), "-o", str(t / "o.threat")],
        ("is a directory",),
        _nothing_written,
        None,
    ),
    "import-vnnlib: a binary csv": (
        lambda t: _csv(t, "net.onnx,p.vnnlib\x00\x01\x02,60\n"),
        ("instances.csv is a binary file",),
        _nothing_written,
        None,
    ),
    "import-vnnlib: a garbage ONNX file": (
        lambda t: (
            _import(t, _prop(""))[:3]
            + [str(_file(t, "g.onnx", "\x00garbage" * 10)), "-o", str(t / "o.threat")]
        ),
        ("not a valid ONNX model", "g.onnx"),
        _nothing_written,
        None,
    ),
    "import-vnnlib: csv names ../outside/x.onnx": (
        lambda t: _csv(t, "../outside/x.onnx,p.vnnlib,60\n"),
        ("instances.csv:1: ../outside/x.onnx lies outside the csv's folder",),
        _nothing_written,
        None,
    ),
    "import-vnnlib: csv names /etc/passwd": (
        lambda t: _csv(t, "net.onnx,../../../../../../../../etc/passwd,60\n"),
        ("lies outside the csv's folder", "--allow-outside-paths"),
        _nothing_written,
        "root:",
    ),
    "import-vnnlib: csv timeout not a number": (
        lambda t: _csv(t, "net.onnx,p.vnnlib,soon\n"),
        ("instances.csv:1: the timeout (third field) must be a positive number",),
        _nothing_written,
        None,
    ),
    "import-vnnlib: a network that cannot be run (unknown op)": (
        _unknown_op_onnx,
        ("odd.onnx cannot be run as imported",),
        _nothing_written,
        None,
    ),
    "import-vnnlib: an ONNX input with a negative size": (
        functools.partial(_unknown_op_onnx, op="Relu", dims=(1, -5)),
        ("odd.onnx declares its input shape [-5]", "fixed positive numbers"),
        _nothing_written,
        None,
    ),
    "import-vnnlib: an ONNX input of 10^12 values": (
        functools.partial(_unknown_op_onnx, op="Relu", dims=(1, 10**6, 10**6)),
        ("5 inputs do not fit the model's input (1000000, 1000000)",),
        _nothing_written,
        None,
    ),
    "run: TorchScript without --allow-code": (
        _evil_run,
        ("evil.pt", "is code that runs when it is loaded", "--allow-code"),
        _no_torchscript_marker,
        None,
    ),
    "compile --emit vnnlib: TorchScript without --allow-code": (
        functools.partial(_evil_run, emit=True),
        ("evil.pt", "--allow-code"),
        _no_torchscript_marker,
        None,
    ),
    "run: a TorchScript file named as a state dict": (
        _torchscript_as_state_dict,
        ("m.pt is a TorchScript archive, not a state dict",),
        None,
        "truncated",
    ),
    "run: npz data whose x is 2-D for an image architecture": (
        _flat_npz_run,
        ("small_cnn takes (C, H, W) images", "(64,)"),
        None,
        None,
    ),
}


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory):
    """Every HOSTILE_CLI_CASES command run once, in one child process under the limits."""
    import resource
    import subprocess
    import sys

    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    root = tmp_path_factory.mktemp("hostile")
    cases, folders = {}, {}
    for k, (name, (build, *_)) in enumerate(HOSTILE_CLI_CASES.items()):
        folder = root / f"case{k}"
        folder.mkdir()
        cases[name] = (build(folder), str(folder))
        folders[name] = folder
    (root / "cases.json").write_text(json.dumps(cases))

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("THREATLANG_DEBUG", None)
    args = [sys.executable, "-c", DRIVER, str(root / "cases.json"), str(root / "out.json")]
    subprocess.run(
        [*args, str(CASE_SECONDS)],
        preexec_fn=limits,
        env=env,
        timeout=CASE_SECONDS * len(cases),
        check=True,
    )
    return json.loads((root / "out.json").read_text()), folders


@pytest.mark.parametrize("case", list(HOSTILE_CLI_CASES))
def test_hostile_command_line_input_is_one_sentence_exit_2(case, hostile_results):
    results, folders = hostile_results
    _, fragments, after, secret = HOSTILE_CLI_CASES[case]
    got = results[case]
    err = got["err"].strip()
    assert got["code"] == 2, (got["code"], err)
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert "Traceback" not in got["out"], got["out"]
    for fragment in fragments:
        assert fragment in err, err
    if secret is not None:
        assert secret not in err, err
    if after is not None:
        after(folders[case])


# ---------------------------------------------------------------- Python API (issue 21)
API_SPEC = """spec s {
  model mlp255
  data digits LIMIT
  threat linf_ball { radius 0.01 }
  require label_unchanged
  certify ibp
}"""


def _api_models():
    import torch
    from torch import nn

    class Tuple(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

        def forward(self, x):
            return self.layer(x), x

    class Dict(Tuple):
        def forward(self, x):
            return {"logits": self.layer(x)}

    with torch.device("meta"):
        meta = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return {"tuple": Tuple(), "dict": Dict(), "meta": meta}


def _endless():
    import torch
    from torch.utils.data import DataLoader, IterableDataset

    class Endless(IterableDataset):
        def __iter__(self):
            while True:
                yield torch.zeros(1, 8, 8), 0

    return DataLoader(Endless(), batch_size=2)


def _huge():
    import torch
    from torch.utils.data import Dataset

    class Huge(Dataset):
        def __len__(self):
            return 10**9

        def __getitem__(self, i):
            return torch.zeros(1, 8, 8), i % 10

    return Huge()


#: what is handed to run() -> fragments of the one-sentence UsageError
API_CASES: dict[str, tuple[Callable[[], dict], tuple[str, ...]]] = {
    "a model returning a tuple": (
        lambda: {"model": _api_models()["tuple"]},
        ("model= returns a tuple, not a tensor",),
    ),
    "a model returning a dict": (
        lambda: {"model": _api_models()["dict"]},
        ("model= returns a dict, not a tensor",),
    ),
    "a function as model=": (lambda: {"model": lambda x: x}, ("got a function",)),
    "a string as model=": (lambda: {"model": "mlp255"}, ("got a str",)),
    "a meta-device model": (lambda: {"model": _api_models()["meta"]}, ("meta device",)),
    "an endless DataLoader": (lambda: {"data": _endless()}, ("without a length",)),
    "a Dataset of 10^9 items": (lambda: {"data": _huge()}, ("1,000,000,000 examples",)),
}


@pytest.mark.parametrize("case", list(API_CASES))
def test_python_api_bad_input_is_one_usage_error(case, tmp_path):
    pytest.importorskip("torch")
    import threatlang

    make, fragments = API_CASES[case]
    spec = threatlang.parse(API_SPEC.replace("LIMIT", ""))
    kwargs = make()
    kwargs.setdefault("model", _api_models()["tuple"].layer)
    with pytest.raises(UsageError) as info:
        threatlang.run(spec, output=tmp_path / "run", quiet=True, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    assert not (tmp_path / "run").exists(), "a refused run created its directory"


@pytest.mark.parametrize("data", ["endless", "huge"])
def test_caller_data_without_an_end_honours_test_limit(data, tmp_path):
    pytest.importorskip("torch")
    import threatlang

    spec = threatlang.parse(API_SPEC.replace("LIMIT", "{ test_limit 3 }"))
    model = _api_models()["tuple"].layer
    given = _endless() if data == "endless" else _huge()
    result = threatlang.run(spec, model=model, data=given, output=tmp_path / "r", quiet=True)
    assert len(result.records) == 3


def test_a_full_disk_is_one_sentence_and_keeps_the_records(tmp_path, capsys, monkeypatch, toy):
    """OSError 28 while appending the second record: exit 2, the first record stays, and
    --resume (with space again) finishes the run."""
    import errno

    from threatlang.records import RecordLog

    real = RecordLog.append
    calls = {"n": 0}

    def append(self, record):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, record)

    monkeypatch.setattr(RecordLog, "append", append)
    spec, out = _spec(tmp_path), tmp_path / "run"
    assert main(["run", spec, "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the disk holding") and "--resume" in err and "\n" not in err
    kept = (out / "records.jsonl").read_text().splitlines()
    assert len(kept) == 1
    monkeypatch.setattr(RecordLog, "append", real)
    assert main(["run", spec, "-o", str(out), "-q", "--resume"]) == 0
    again = (out / "records.jsonl").read_text().splitlines()
    assert again[0] == kept[0] and len(again) == 4


def test_auto_lirpa_prints_no_traceback_when_it_cannot_trace(capfd):
    """auto_LiRPA's graph parser prints the failed trace's traceback to stdout before it raises;
    a `--quiet` run that falls back from it showed a full traceback and still exited 0."""
    pytest.importorskip("auto_LiRPA")
    import torch
    from torch import nn

    from threatlang.bounds import UnsupportedOp
    from threatlang.bounds.lirpa import LirpaNetwork

    class Untraceable(nn.Module):
        def forward(self, x):  # runs eagerly, refuses torch.jit's trace
            if torch.jit.is_tracing():
                raise RuntimeError("no trace of me")
            return 2 * x

    with pytest.raises(UnsupportedOp, match="Failed to get the trace"):
        LirpaNetwork(Untraceable()).bounded(torch.zeros(1, 4))
    said = capfd.readouterr()
    assert "Traceback" not in said.out and "Traceback" not in said.err, said
