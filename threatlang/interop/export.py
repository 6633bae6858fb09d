"""`threatlang compile SPEC --emit vnnlib --output DIR`: a VNN-COMP benchmark directory.

    DIR/onnx/NAME.onnx            the network (converted from torch by our exporter, or copied)
    DIR/vnnlib/NAME_I_KIND.vnnlib  one property per test example (and per radius)
    DIR/instances.csv             onnx,vnnlib,timeout per line, paths relative to DIR

Each property is unsafe when some input in the threat's boxes changes the label, or (for
`require outputs { ... }`) gives outputs where the required formula fails. An input box needs
no data: it is one property.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import attrs
import numpy as np

from ..errors import UsageError
from ..ir import Certify, ModelKind, ModelRef, Spec
from ..ir.properties import OutputsSatisfy
from ..ir.threats import InputBox
from .boxes import example_queries, refuse_unless_boxes
from .vnnlib import Box, Query, label_unsafe
from .vnnlib_props import unsafe_of
from .vnnlib_write import write_v1, write_v2

DEFAULT_TIMEOUT = 60.0


@attrs.frozen
class Exported:
    onnx: Path
    properties: tuple[Path, ...]
    instances: Path


def export_vnnlib(
    spec: Spec,
    out_dir: str | Path,
    *,
    weights: str | Path | None = None,
    version: int = 1,
    limit: int | None = None,
    allow_code: bool = False,
    split: bool = False,
) -> Exported:
    """Write `spec`'s network, properties and instances.csv under `out_dir`.

    With `split`, a union of boxes (a patch set) becomes one property per box, each a plain
    box: the example is robust iff every one of its instances is unsat. (One file with the
    whole disjunction is 34 MB for a 2x2 patch anywhere on a 28x28 image.)
    """
    from ..data import load_dataset

    refuse_unless_boxes(spec)
    if isinstance(spec.threat, InputBox):
        return _export_box(spec, Path(out_dir), weights, version, allow_code)
    if spec.data is None:
        raise UsageError(f"spec '{spec.name}' has no data: properties are stated per example.")
    splits = load_dataset(spec.data, spec.seed)
    test = splits.test.take(limit) if limit is not None else splits.test
    shape = tuple(test.x.shape[1:])
    low, high = (spec.domain.low, spec.domain.high) if spec.domain else (0.0, 1.0)
    out = Path(out_dir)
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    (out / "vnnlib").mkdir(parents=True, exist_ok=True)
    onnx_path = out / "onnx" / f"{spec.name}.onnx"
    num_outputs = write_model(spec, onnx_path, shape, splits.num_classes, weights, allow_code)
    timeout = next(
        (a.time_limit for a in spec.actions if isinstance(a, Certify) and a.time_limit),
        DEFAULT_TIMEOUT,
    )
    props, rows = [], []
    for i, (x, y) in enumerate(zip(test.x, test.y, strict=True)):
        for suffix, boxes in _parts(example_queries(spec, x, low, high), split):
            unsafe = (
                unsafe_of(spec.require)
                if isinstance(spec.require, OutputsSatisfy)
                else label_unsafe(int(y), num_outputs)
            )
            query = Query(shape, num_outputs, boxes, unsafe)
            note = f"threatlang spec {spec.name}: test example {i} (label {int(y)}), {suffix}"
            text = write_v1(query, note) if version == 1 else write_v2(query, spec.name, note)
            path = out / "vnnlib" / f"{spec.name}_{i}_{suffix}.vnnlib"
            path.write_text(text)
            props.append(path)
            rows.append(f"{onnx_path.relative_to(out)},{path.relative_to(out)},{timeout:g}")
    instances = out / "instances.csv"
    instances.write_text("\n".join(rows) + "\n")
    return Exported(onnx_path, tuple(props), instances)


def _export_box(spec: Spec, out: Path, weights, version: int, allow_code: bool) -> Exported:
    """One property: the box, and where `require outputs` fails."""
    box, prop = spec.threat, spec.require
    shape = tuple(spec.domain.shape) if spec.domain is not None else (box.dims,)
    if int(np.prod(shape)) != box.dims:
        raise UsageError(
            f"spec '{spec.name}': the box has {box.dims} dimensions, the input shape {shape} "
            f"has {int(np.prod(shape))}."
        )
    (out / "onnx").mkdir(parents=True, exist_ok=True)
    (out / "vnnlib").mkdir(parents=True, exist_ok=True)
    onnx_path = out / "onnx" / f"{spec.name}.onnx"
    num_outputs = write_model(spec, onnx_path, shape, prop.outputs, weights, allow_code)
    if prop.outputs > num_outputs:
        raise UsageError(
            f"spec '{spec.name}' constrains y[{prop.outputs - 1}], but the network has "
            f"{num_outputs} outputs."
        )
    query = Query(shape, num_outputs, (Box(box.lower, box.upper),), unsafe_of(prop))
    note = f"threatlang spec {spec.name}: an input box, require outputs"
    text = write_v1(query, note) if version == 1 else write_v2(query, spec.name, note)
    path = out / "vnnlib" / f"{spec.name}.vnnlib"
    path.write_text(text)
    timeout = next(
        (a.time_limit for a in spec.actions if isinstance(a, Certify) and a.time_limit),
        DEFAULT_TIMEOUT,
    )
    instances = out / "instances.csv"
    instances.write_text(f"{onnx_path.relative_to(out)},{path.relative_to(out)},{timeout:g}\n")
    return Exported(onnx_path, (path,), instances)


def _parts(queries, split: bool):
    for suffix, boxes in queries:
        if split and len(boxes) > 1:
            yield from ((f"{suffix}{k}", (box,)) for k, box in enumerate(boxes))
        else:
            yield suffix, boxes


def write_model(spec, path: Path, shape, num_classes, weights, allow_code) -> int:
    """Write the network to `path`; return its number of outputs."""
    from ..models_io import load_model, resolve_path
    from .onnx_export import export_onnx
    from .onnx_import import check_against_onnxruntime

    ref = spec.model
    if ref is None:
        raise UsageError(f"spec '{spec.name}' names no model.")
    if ref.kind is ModelKind.ONNX:
        shutil.copyfile(resolve_path(ref), path)
        return _onnx_outputs(path, shape)
    if ref.kind is ModelKind.BUILTIN:
        if weights is None:
            raise UsageError(
                f"model {ref.name} is trained when the spec runs; pass --weights FILE (a state "
                "dict saved by a run, e.g. RUN_DIR/model.pt) to export it."
            )
        ref = ModelRef(ModelKind.STATE_DICT, str(weights), arch=ref.name, options=ref.options)
    model = load_model(ref, shape, num_classes, allow_code=allow_code)
    export_onnx(model, shape, path)
    try:
        check_against_onnxruntime(path, model, shape)
    except UsageError as err:
        if "needs onnxruntime" not in str(err):
            raise
    return _onnx_outputs(path, shape)


def _onnx_outputs(path: Path, shape) -> int:
    import onnx

    dims = onnx.load(str(path)).graph.output[0].type.tensor_type.shape.dim
    values = [d.dim_value for d in dims]
    if values and all(v > 0 for v in values):
        return int(np.prod(values))
    raise UsageError(f"{path}: the output shape is not static; export it with a fixed shape.")
