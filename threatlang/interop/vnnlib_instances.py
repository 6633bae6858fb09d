"""VNN-COMP instance lists read defensively: `instances.csv` rows (onnx, vnnlib, timeout)
whose paths stay inside the csv's folder, property files read with a size cap (gzip too), and
the ONNX input shape a property's flat `X_i` vector is reshaped to.

Every problem is one `UsageError` naming the file and the problem. Messages never quote what
a file holds: a csv line pointing at `/etc/passwd` must not print its first line.
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path

import attrs
import numpy as np

from ..errors import UsageError
from .vnnlib import Query, unsafe_label
from .vnnlib_read import read

DEFAULT_TIMEOUT = 60.0
#: the largest property text we read, decompressed (VNN-COMP's largest are a few MB)
MAX_TEXT_BYTES = 128 << 20
#: the largest instances.csv we read
MAX_CSV_BYTES = 16 << 20
OUTSIDE_FLAG = "--allow-outside-paths"


@attrs.frozen(eq=False)
class Instance:
    onnx: Path
    query: Query
    label: int | None  # the label of a label_unchanged property, else None
    vnnlib: Path | None = None
    timeout: float = DEFAULT_TIMEOUT


def read_instances(
    path: str | Path, onnx: str | Path | None = None, *, allow_outside: bool = False
) -> list[Instance]:
    """Instances from an instances.csv (paths relative to it, inside its folder unless
    `allow_outside`) or from one .vnnlib file with its `onnx` network."""
    path = Path(path)
    if path.suffix == ".csv":
        triples = csv_rows(path, allow_outside)
    else:
        if onnx is None:
            raise UsageError(f"{path} needs its network: pass --onnx MODEL.onnx.")
        triples = [(Path(onnx), path, DEFAULT_TIMEOUT)]
    shapes: dict[Path, tuple[int, ...]] = {}
    out = []
    for model, prop, timeout in triples:
        if model not in shapes:
            shapes[model] = onnx_input_shape(model)
        text = read_text(prop)
        try:
            query = read(text, shapes[model])
        except UsageError as err:
            raise UsageError(f"{prop}: {err}") from None
        _bounded(query, prop)
        out.append(Instance(model, query, unsafe_label(query), prop, timeout))
    if not out:
        raise UsageError(f"{path} lists no instances.")
    return out


def csv_rows(path: Path, allow_outside: bool = False) -> list[tuple[Path, Path, float]]:
    """(onnx, vnnlib, timeout) per row of an instances.csv, read with a size cap, each path
    inside the csv's folder unless `allow_outside` (what every reader of such a list uses)."""
    text = read_text(path, MAX_CSV_BYTES, what="instances file")
    if "\x00" in text:
        raise UsageError(f"{path} is a binary file, not an instances.csv of onnx,vnnlib,timeout.")
    folder = path.parent.resolve()
    out = []
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as err:
        raise UsageError(f"{path} is not a readable csv ({err}).") from None
    for line, row in enumerate(rows, 1):
        if not row or not row[0].strip():
            continue
        if len(row) not in (2, 3):
            raise UsageError(f"{path}:{line}: each line needs onnx,vnnlib[,timeout].")
        model, prop = (_inside(folder, row[k].strip(), path, line, allow_outside) for k in (0, 1))
        out.append((model, prop, _timeout(row, path, line)))
    return out


def _inside(folder: Path, name: str, csv_path: Path, line: int, allow: bool) -> Path:
    """`folder / name`, refused when it resolves outside `folder` and `allow` is not set."""
    target = folder / name
    if not allow and not target.resolve().is_relative_to(folder):
        shown = name if len(name) <= 60 else name[:59] + "…"
        raise UsageError(
            f"{csv_path}:{line}: {shown} lies outside the csv's folder {folder}; move it there, "
            f"or pass {OUTSIDE_FLAG} if you trust this list."
        )
    return target


def _timeout(row: list[str], path: Path, line: int) -> float:
    if len(row) < 3 or not row[2].strip():
        return DEFAULT_TIMEOUT
    try:
        value = float(row[2])
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise UsageError(f"{path}:{line}: the timeout (third field) must be a positive number.")
    return value


def read_text(path: Path, limit: int = MAX_TEXT_BYTES, what: str = "VNN-LIB file") -> str:
    """A file's UTF-8 text (gunzipped for `.gz`), at most `limit` bytes, or a `UsageError`."""
    if not path.exists():
        raise UsageError(f"{what} {path} not found.")
    if path.is_dir():
        raise UsageError(f"{what} {path} is a directory; give the file itself.")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read(limit + 1)
        else:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
    except (gzip.BadGzipFile, EOFError, zlib.error):
        raise UsageError(f"{what} {path} is not a complete gzip file.") from None
    except OSError as err:
        raise UsageError(f"{what} {path} cannot be read ({err.strerror or err}).") from None
    if len(data) > limit:
        raise UsageError(
            f"{what} {path} holds more than {limit >> 20} MB of text; this is past the "
            "reader's limit (is it the right file?)."
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UsageError(
            f"{what} {path} is not UTF-8 text (byte {err.start}); VNN-LIB files are ASCII."
        ) from None


def onnx_input_shape(path: Path) -> tuple[int, ...]:
    """The input shape the ONNX network declares, without a leading batch dimension of 1."""
    from ..models_io import check_onnx_file

    if not path.exists():
        raise UsageError(f"ONNX model {path} not found.")
    if path.is_dir():
        raise UsageError(f"ONNX model {path} is a directory; give the .onnx file.")
    check_onnx_file(path)
    from .onnx_import import read_model

    graph = read_model(path).graph  # one sentence for a file onnx cannot read
    init = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in init]
    if len(inputs) != 1:
        raise UsageError(f"ONNX model {path} has {len(inputs)} inputs; one network input is read.")
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in _dims(inputs[0])]
    if len(dims) > 1 and dims[0] in (0, 1):
        dims = dims[1:]  # the batch dimension
    if not dims or any(d <= 0 for d in dims):
        raise UsageError(
            f"ONNX model {path} declares its input shape {dims or '()'}; the sizes must be "
            "fixed positive numbers (a batch dimension first may be free)."
        )
    return tuple(dims)


def _dims(value_info):
    tensor = value_info.type.tensor_type
    return tensor.shape.dim if tensor.HasField("shape") else []


def _bounded(query: Query, prop: Path) -> None:
    """Every input of every box has finite bounds: a box with a free side cannot be stated."""
    for box in query.boxes:
        for side, values in (("lower", box.lo), ("upper", box.hi)):
            bad = np.flatnonzero(~np.isfinite(values))
            if len(bad):
                raise UsageError(
                    f"{prop}: input X_{int(bad[0])} has no {side} bound; every input needs both."
                )
