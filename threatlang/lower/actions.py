"""Lowering of the action statements: train, certify, smooth, attack, evaluate."""

from __future__ import annotations

from ..ir import (
    Attack,
    AttackLocations,
    BinBy,
    Certify,
    DetectionEncoding,
    Evaluate,
    Smooth,
    SortBy,
    Train,
)
from ..syntax import Call, Name, Stmt, describe
from .reader import BAD, Block, Diagnostics, Values, build, call_args

ACTIONS = ("train", "certify", "smooth", "attack", "evaluate")


def lower_action(stmt: Stmt, diags: Diagnostics):
    values = Values(diags)
    lowerer = {
        "train": _train,
        "certify": _certify,
        "smooth": _smooth,
        "attack": _attack,
        "evaluate": _evaluate,
    }[stmt.key]
    return lowerer(stmt, values, diags)


def _fields(block: Block, values: Values, readers: dict) -> tuple[dict, dict]:
    kwargs, spans = {}, {}
    for key, (field, read) in readers.items():
        s = block.take(key)
        if s is not None:
            kwargs[field] = read(s.value, key, s.span)
            spans[field] = s.span
    return kwargs, spans


def _train(stmt: Stmt, values: Values, diags: Diagnostics):
    """`train NAME` or `train NAME(k)`; which names exist (and which take k) is the installed
    backends' declaration, checked by `threatlang.check` with the known choices."""
    v = stmt.value
    name = v.name if isinstance(v, Call) else v.text if isinstance(v, Name) else None
    if name is None:
        where = v.span if v is not None else stmt.span
        return diags.error(
            where, f"train expects a strategy, got {describe(v)}", "e.g. train standard"
        )
    k = None
    if isinstance(v, Call):
        args = call_args(diags, v, (1, 1), f"{name}(k)")
        k = BAD if args is BAD else values.integer(args[0], f"{name} k", v.span)
    block = Block(stmt.block, f"train {name}", diags)
    kwargs, spans = _fields(
        block,
        values,
        {
            "epochs": ("epochs", values.integer),
            "lr": ("lr", values.real),
            "batch": ("batch_size", values.integer),
            "warmup": ("warmup", values.integer),
        },
    )
    spans["strategy"] = v.span
    return build(
        diags,
        Train,
        stmt.span,
        spans,
        strategy=name,
        k=k,
        options=block.options(values),
        **kwargs,
    )


def _method(stmt: Stmt, values: Values, what: str):
    """The action's choice as a name; `threatlang.check` validates it against the backends."""
    return values.identifier(stmt.value, what, stmt.key_span)


def _certify(stmt: Stmt, values: Values, diags: Diagnostics):
    method = _method(stmt, values, "certification method")
    block = Block(stmt.block, "certify", diags)
    kwargs, spans = _fields(
        block,
        values,
        {
            "time_limit": ("time_limit", values.duration),
            "threads": ("threads", values.integer),
        },
    )
    return build(
        diags, Certify, stmt.span, spans, method=method, options=block.options(values), **kwargs
    )


def _smooth(stmt: Stmt, values: Values, diags: Diagnostics):
    kind = _method(stmt, values, "smoothing kind")
    block = Block(stmt.block, "smooth", diags)
    kwargs, spans = _fields(
        block,
        values,
        {
            "sigma": ("sigma", values.real),
            "samples": ("samples", values.count),
            "confidence": ("confidence", values.real),
            "percentile": ("percentile", values.real),
            "batch": ("batch_size", values.integer),
        },
    )
    if "sigma" not in kwargs:
        kwargs["sigma"] = diags.error(stmt.span, "smoothing needs `sigma`", "e.g. sigma 0.25")
    enc = block.take("encoding")
    if enc is not None:
        kwargs["encoding"] = _encoding(enc, values, diags)
    return build(
        diags, Smooth, stmt.span, spans, kind=kind, options=block.options(values), **kwargs
    )


def _encoding(stmt: Stmt, values: Values, diags: Diagnostics):
    if stmt.block is None:
        return diags.error(
            stmt.span, "encoding takes a block", "encoding { sort objectness  bin label }"
        )
    block = Block(stmt.block, "encoding", diags)
    kwargs, spans = _fields(
        block,
        values,
        {
            "sort": (
                "sorts",
                lambda v, w, s: values.many(
                    v, w, s, lambda x, w2, s2: values.enum(x, SortBy, "sorting", s2)
                ),
            ),
            "bin": (
                "bins",
                lambda v, w, s: values.many(
                    v, w, s, lambda x, w2, s2: values.enum(x, BinBy, "binning", s2)
                ),
            ),
            "grid": ("grid", lambda v, w, s: values.many(v, w, s, values.integer)),
            "max_boxes": ("max_boxes", values.integer),
            "denoiser": ("denoiser", values.string),
        },
    )
    block.reject_rest(["sort", "bin", "grid", "max_boxes", "denoiser"])
    return build(diags, DetectionEncoding, stmt.span, spans, **kwargs)


def _attack(stmt: Stmt, values: Values, diags: Diagnostics):
    method = _method(stmt, values, "attack")
    block = Block(stmt.block, "attack", diags)
    kwargs, spans = _fields(
        block,
        values,
        {
            "steps": ("steps", values.integer),
            "step_size": ("step_size", values.real),
            "restarts": ("restarts", values.integer),
            "locations": (
                "locations",
                lambda v, w, s: values.enum(v, AttackLocations, "attack locations", s),
            ),
        },
    )
    return build(
        diags, Attack, stmt.span, spans, method=method, options=block.options(values), **kwargs
    )


def _evaluate(stmt: Stmt, values: Values, diags: Diagnostics):
    kind = _method(stmt, values, "evaluation")
    block = Block(stmt.block, "evaluate", diags)
    return build(diags, Evaluate, stmt.span, {}, kind=kind, options=block.options(values))


__all__ = ["ACTIONS", "lower_action"]
