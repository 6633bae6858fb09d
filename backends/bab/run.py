"""Running a `BabPlan`: load the model, shard the box into work items, solve each through the
shared run loop (any executor, resumable), aggregate the verdict."""

from __future__ import annotations

import functools
import importlib.util
import time

import attrs
import numpy as np

from threatlang.errors import UsageError
from threatlang.ir import ModelKind
from threatlang.ir.threats import input_boxes
from threatlang.report import Record, Status, Summary, Table
from threatlang.runloop import run_items

from .config import BabOptions, Engine

STATUS = {"holds": Status.CERTIFIED, "violated": Status.FALSIFIED}


def shard_boxes(lo: np.ndarray, hi: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`k` boxes covering [lo, hi]: repeatedly bisect the widest dimension of the widest box."""
    boxes = [(lo.copy(), hi.copy())]
    while len(boxes) < k:
        i = max(range(len(boxes)), key=lambda j: float((boxes[j][1] - boxes[j][0]).max()))
        a, b = boxes.pop(i)
        d = int(np.argmax(b - a))
        mid = (a[d] + b[d]) / 2
        left_hi, right_lo = b.copy(), a.copy()
        left_hi[d], right_lo[d] = mid, mid
        boxes[i:i] = [(a, left_hi), (right_lo, b)]
    return boxes


def solve_item(
    payload,
    *,
    model,
    input_shape,
    prop,
    original,
    options: BabOptions,
    seed: int,
    started: float | None = None,
):
    """One work item: (id, lo, hi) -> its Record. Top-level and picklable (Ray). With
    `started` (wall clock, `time.time()`), the time limit counts from then: a single-box run's
    model loading and capture come out of its limit, as in VNN-COMP."""
    from .adapter import EngineNet, UnsupportedLayer
    from .problem import build_problem
    from .search import solve

    item_id, lo, hi = payload
    if options.engine is Engine.MARABOU:
        options = _spent(options, started)
        return _marabou_item(item_id, lo, hi, prop, original, options)
    try:
        net = EngineNet(model, input_shape)
        points = _validate_engine(net, model, input_shape, lo, hi)
    except UnsupportedLayer as err:
        return Record(item_id, Status.UNKNOWN, {"verdict": "unknown"}, reason=str(err))
    problem = build_problem(prop, net.outputs)
    options = _spent(options, started)
    record = _record(item_id, solve(net, problem, original, lo, hi, options, seed))
    if record.status is Status.CERTIFIED:
        bad = problem.violated(points)
        if bool(np.asarray(bad).any()):  # a proof contradicted by a sampled point
            values = {**record.values, "verdict": "unknown", "engine_defect": True}
            why = (
                "engine defect: the property was proved but a sampled point of the input box "
                "violates it; not certified"
            )
            return Record(item_id, Status.ERROR, values, record.seconds, None, why)
    return record


def _spent(options: BabOptions, started: float | None) -> BabOptions:
    """The options with the time already spent since `started` taken off the limit."""
    if started is None:
        return options
    left = options.time_limit - (time.time() - started)
    return attrs.evolve(options, time_limit=max(left, 1e-3))


def _validate_engine(net, model, input_shape, lo, hi) -> np.ndarray:
    """Translation validation: the bounded graph equals the model at the box's corners and
    inside it, and the model is deterministic. Returns the model's outputs there (P, m)."""
    import torch

    from threatlang.bounds.box import Box
    from threatlang.bounds.inputs import BoxInput
    from threatlang.bounds.validate import check_deterministic, check_translation

    lo_t = torch.as_tensor(np.asarray(lo), dtype=torch.float32).reshape(1, *input_shape)
    hi_t = torch.as_tensor(np.asarray(hi), dtype=torch.float32).reshape(1, *input_shape)
    pts = BoxInput(Box.from_bounds(lo_t, hi_t)).sample(16, torch.Generator().manual_seed(0))
    model = model.eval()
    check_deterministic(model, pts[:, 0])

    def bounded(x):
        return net(x.double()).float().reshape(x.shape[0], -1)

    def original(x):
        return model(x).reshape(x.shape[0], -1)

    z = check_translation(original, bounded, pts, "points of the input box")
    return z.reshape(z.shape[0], -1).double().numpy()


def _marabou_item(item_id, lo, hi, prop, original, options: BabOptions) -> Record:
    from .marabou import solve_marabou
    from .problem import build_problem

    problem = build_problem(prop, prop.outputs)
    out = solve_marabou(original.onnx, problem, original, lo, hi, options.time_limit)
    return _record(item_id, out)


def _record(item_id, out) -> Record:
    status = STATUS.get(out.verdict, Status.TIMEOUT if out.timed_out else Status.UNKNOWN)
    values = {
        "verdict": out.verdict,
        "bound_alone": out.bound_alone,
        "domains": out.domains,
        "depth": out.depth,
        "unconfirmed": out.unconfirmed,
        "attack_seconds": round(out.attack_seconds, 3),
    }
    return Record(item_id, status, values, out.seconds, out.counterexample, out.reason)


def _load(ref, shape, outputs: int, allow_code: bool):
    """The network a spec names; an ONNX file loaded once per process while unchanged, so the
    instances of one network in an instance set share one conversion and one capture."""
    from threatlang.ir import ModelKind
    from threatlang.models_io import load_model, resolve_path

    if ref.kind is not ModelKind.ONNX:
        return load_model(ref, shape, outputs, allow_code=allow_code)
    path = resolve_path(ref)
    stat = path.stat()
    return _load_onnx(ref, str(path), stat.st_mtime_ns, stat.st_size, shape, outputs)


@functools.lru_cache(maxsize=8)
def _load_onnx(ref, path: str, mtime: int, size: int, shape, outputs: int):  # noqa: ANN001
    from threatlang.models_io import load_model

    return load_model(ref, shape, outputs)


def run_plan(plan, ctx) -> Summary:
    started = time.time()
    from threatlang.models_io import resolve_path

    from .confirm import Original

    spec = plan.spec
    shape = plan.input_shape
    if int(np.prod(shape)) != plan.box.dims:
        raise UsageError(
            f"spec '{spec.name}': the box has {plan.box.dims} dimensions, the input shape "
            f"{shape} has {int(np.prod(shape))}."
        )
    marabou = plan.options.engine is Engine.MARABOU
    if ctx.model is not None:
        model = ctx.model.eval()
    elif marabou:
        model = None  # Marabou reads the ONNX file; onnxruntime confirms its points
    else:
        if spec.model is None or spec.model.kind is ModelKind.BUILTIN:
            raise UsageError(
                f"spec '{spec.name}' certifies a model it never trains: name its file "
                '(onnx("net.onnx"), torchscript(...), state_dict(...) { arch ... }) or pass model=.'
            )
        model = _load(spec.model, shape, plan.prop.outputs, ctx.allow_code)
    onnx = None
    if plan.options.engine is Engine.MARABOU and (
        ctx.model is not None or spec.model.kind is not ModelKind.ONNX
    ):
        raise UsageError(
            f"spec '{spec.name}': engine marabou reads the network from an ONNX file; name one "
            '(model onnx("net.onnx")) or use the default engine.'
        )
    if ctx.model is None and spec.model.kind is ModelKind.ONNX:
        onnx = str(resolve_path(spec.model))
        if importlib.util.find_spec("onnxruntime") is None:
            raise UsageError("confirming counterexamples on an ONNX model needs onnxruntime.")
    original = Original(shape, onnx=onnx, module=None if onnx else model)
    o = plan.options
    boxes = input_boxes(plan.box)
    ids, shards = [], []
    for b, box in enumerate(boxes):
        base = spec.name if len(boxes) == 1 else f"{spec.name}@box{b}"
        lo, hi = np.asarray(box.lower), np.asarray(box.upper)
        shards += shard_boxes(lo, hi, o.shards)
        ids += [base] if o.shards == 1 else [f"{base}#{k}" for k in range(o.shards)]
    fn = functools.partial(
        solve_item,
        model=model,
        input_shape=shape,
        prop=plan.prop,
        original=original,
        options=o,
        seed=ctx.seed,
        started=started if o.shards == 1 else None,  # the boxes of a union share the limit
    )
    items = [(i, (i, a, b)) for i, (a, b) in zip(ids, shards, strict=True)]
    records = run_items(ctx, items, fn, f"bab {spec.name}")
    return summarize(spec.name, records)


def summarize(name: str, records) -> Summary:
    verdicts = [r.values.get("verdict", "unknown") for r in records]
    if verdicts and all(v == "holds" for v in verdicts):
        verdict = "holds"
    elif "violated" in verdicts:
        verdict = "violated"
    else:
        verdict = "unknown"
    rows = [
        (
            r.id,
            r.values.get("verdict", "unknown"),
            r.values.get("bound_alone", "unknown"),
            r.values.get("domains", 0),
            round(r.seconds, 3),
            r.reason or "",
        )
        for r in records
    ]
    table = Table(
        "branch and bound: holds = proved; violated = counterexample confirmed on the original "
        "model; unknown = undecided within the limits",
        ("id", "verdict", "bound alone", "domains", "seconds", "reason"),
        rows,
    )
    return Summary(
        {
            "verdict": verdict,
            "holds": verdicts.count("holds"),
            "violated": verdicts.count("violated"),
            "unknown": len(verdicts) - verdicts.count("holds") - verdicts.count("violated"),
            "seconds": round(sum(r.seconds for r in records), 3),
            "attack_seconds": round(sum(r.values.get("attack_seconds", 0.0) for r in records), 3),
            # proofs for boxes where our float64 copy of the model saw a violation: 0 unless
            # a bound was unsound (the counter every certifying backend reports)
            "soundness_violations": sum(
                1
                for r in records
                if (r.values.get("verdict") == "holds" and r.values.get("unconfirmed"))
                or r.values.get("engine_defect")
            ),
        },
        (table,),
    )
