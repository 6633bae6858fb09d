"""`threatlang import-vnnlib`: VNN-COMP instances (an ONNX model and `X_i`/`Y_j` properties)
become `.threat` specs that run and can decide.

By default every instance becomes one spec: `threat box { ... }` with the file's exact
float64 bounds (`threat boxes { box {...} box {...} }` for a union of input boxes: one spec,
one verdict), the input shape the ONNX network declares, `require outputs { ... }` (the
negation of the file's unsafe set; a label_unchanged property is `y[label] > y[j]` for every
other j) and `certify bab` with the instance's time-out, which can answer `violated`. A
multi-spec file runs as one instance set (`threatlang run FILE`), or one instance with
`--spec NAME`.

`--recognise` states label_unchanged instances as the threat that generated them instead (see
`vnnlib_recognise`).

Nothing is written unless all of it checks: the specs are parsed, admitted by a backend with
their options, and their network is loaded with the declared input shape, before the `.threat`
(and `.npz`) file is written in one step.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from ..errors import CapabilityError, SpecError, UsageError
from .vnnlib import Box, Query
from .vnnlib_instances import Instance, read_instances
from .vnnlib_props import outputs_text, safe_formula
from .vnnlib_recognise import recognised_spec

__all__ = ["import_vnnlib"]


def import_vnnlib(
    path: str | Path,
    output: str | Path,
    *,
    onnx: str | Path | None = None,
    name: str | None = None,
    recognise: bool = False,
    allow_outside: bool = False,
) -> Path:
    """Write OUTPUT (.threat) for the instances, and OUTPUT.npz (centres and labels) with
    `recognise`; returns OUTPUT. A refused import writes nothing."""
    path, output = Path(path), Path(output)
    instances = read_instances(path, onnx, allow_outside=allow_outside)
    folder = output.parent.resolve()
    arrays = None
    data = output.with_suffix(".npz")
    if recognise:
        model = os.path.relpath(instances[0].onnx.resolve(), folder)
        base = name or output.stem.replace("-", "_")
        text, arrays = recognised_spec(instances, path, base, model, data.resolve())
    else:
        text = _box_specs(instances, path, output, name)
    _check(text, output, instances)
    output.parent.mkdir(parents=True, exist_ok=True)
    if arrays is not None:
        _write_atomic(data, lambda fh: np.savez(fh, **arrays))
    _write_atomic(output, lambda fh: fh.write(text.encode()))
    return output


def _write_atomic(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------- checking
def _check(text: str, output: Path, instances: list[Instance]) -> None:
    """What `threatlang check` does, and what `run` does first: parse, backend admission and
    options, and loading each network with the declared input shape."""
    from ..check import untrained_builtin
    from ..compile import select_backend
    from ..errors import Diagnostic
    from ..parse import parse_all

    try:
        specs = parse_all(text, str(output))
        problems: list[Diagnostic] = []
        for spec in specs:
            try:
                select_backend(spec)
            except CapabilityError as err:
                problems.extend(err.diagnostics)
            problems.extend(untrained_builtin(spec))
        if problems:
            raise SpecError(problems)
    except (SpecError, CapabilityError) as err:
        first = str(err).splitlines()[0]
        raise UsageError(
            f"the spec written for these instances does not check ({first}); nothing was "
            f"written to {output}."
        ) from None
    _load_networks(specs, instances)


def _load_networks(specs, instances: list[Instance]) -> None:
    from ..models_io import load_model

    seen = set()
    outputs = instances[0].query.num_outputs
    for spec in specs:
        shape = spec.domain.shape if spec.domain is not None else None
        key = (spec.model.name, shape)
        if key in seen:
            continue
        seen.add(key)
        if shape is None:
            shape = instances[0].query.input_shape
        try:
            load_model(spec.model, tuple(shape), outputs)
        except UsageError as err:
            raise UsageError(f"{spec.model.name} cannot be run as imported: {err}") from None
        except Exception as err:  # noqa: BLE001 - a converter failure: the spec could not run
            why = (str(err).strip().splitlines() or [""])[0][:160]
            raise UsageError(
                f"{spec.model.name} cannot be run as imported ({type(err).__name__}: {why}); "
                "nothing was written."
            ) from None


# ------------------------------------------------------------------------- box specs (bab)
def _box_specs(instances: list[Instance], source: Path, output: Path, name: str | None) -> str:
    """One spec per instance: its box (or union of boxes) threat, outputs, bab."""
    base = _identifier(name or output.stem)
    folder = output.parent.resolve()
    specs, used = [], set()
    for k, inst in enumerate(instances):
        model = os.path.relpath(inst.onnx.resolve(), folder)
        stem = _identifier(inst.vnnlib.stem if inst.vnnlib is not None else str(k))
        spec_name = f"{base}_{stem}"
        while spec_name in used:
            spec_name += "_"
        used.add(spec_name)
        specs.append(_box_spec(spec_name, model, inst.query, inst.timeout))
    note = f"# Imported from {source.name}: {len(instances)} VNN-LIB properties."
    return "threatlang 1\n\n" + note + "\n" + "\n".join(specs)


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    return out if out and not out[0].isdigit() else f"p_{out}"


def _floats(values) -> str:
    return "[" + ", ".join(repr(float(v) + 0.0) for v in values) + "]"


def _box_spec(name: str, model: str, query: Query, timeout: float) -> str:
    """The exact float64 box(es); the input shape the network declares; the boxes' range.

    A property whose input set is a union of boxes (ACAS Xu property 6) is one spec with
    `threat boxes { box {...} ... }`: one verdict, the boxes sharing the time limit."""
    shape = query.input_shape
    domain = ""
    if len(shape) > 1:
        lo = min(float(b.lo.min()) for b in query.boxes)
        hi = max(float(b.hi.max()) for b in query.boxes)
        hi = hi if hi > lo else lo + 1.0
        dims = ", ".join(str(d) for d in shape)
        domain = f"  input {{\n    shape ({dims})\n    range [{lo!r}, {hi!r}]\n  }}\n"
    if len(query.boxes) == 1:
        threat = "threat " + _box_block(query.boxes[0], "  ")
    else:
        inner = "".join(f"    {_box_block(b, '    ')}" for b in query.boxes)
        threat = f"threat boxes {{\n{inner}  }}\n"
    formula = safe_formula(query.unsafe)
    return f"""spec {name} {{
  model onnx("{model}")
{domain}  {threat}  {outputs_text(formula)}
  certify bab {{ time_limit {timeout!r}s }}
}}
"""


def _box_block(box: Box, indent: str) -> str:
    return (
        f"box {{\n{indent}  lower {_floats(box.lo)}\n{indent}  upper {_floats(box.hi)}\n"
        f"{indent}}}\n"
    )
