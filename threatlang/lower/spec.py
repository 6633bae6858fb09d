"""Lowering of whole files and spec blocks: model, data, input domain, seed, preprocessing."""

from __future__ import annotations

from ..errors import SpecError
from ..ir import DataRef, Domain, ModelKind, ModelRef, Preprocess, PreprocessKind, Spec
from ..ir.refs import CORE_SOURCES
from ..ir.spec import LANGUAGE_VERSION, SEED_MAX
from ..syntax import Call, FileNode, Name, SpecNode, Stmt, describe
from .actions import ACTIONS, lower_action
from .reader import BAD, Block, Diagnostics, Values, build, call_args
from .threats import lower_property, lower_threat

SPEC_KEYS = ("model", "data", "input", "seed", "threat", "require", "preprocess", *ACTIONS)
MODEL_FILE_KINDS = {
    "state_dict": ModelKind.STATE_DICT,
    "torchscript": ModelKind.TORCHSCRIPT,
    "onnx": ModelKind.ONNX,
    "python": ModelKind.PYTHON,
}


def lower_file(node: FileNode) -> tuple[Spec, ...]:
    """Lower every spec of a file; raise one `SpecError` carrying all diagnostics, sorted."""
    diags = Diagnostics()
    version = LANGUAGE_VERSION
    if node.version is not None:
        if node.version != LANGUAGE_VERSION:
            diags.error(
                node.version_span,
                f"unsupported language version {node.version}",
                f"threatlang {LANGUAGE_VERSION}",
            )
        version = node.version
    specs, names, partials = [], {}, []
    for spec_node in node.specs:
        if spec_node.name in names:
            diags.error(
                spec_node.span,
                f"spec '{spec_node.name}' is defined twice (first at line {names[spec_node.name]})",
            )
        names.setdefault(spec_node.name, spec_node.span.line)
        spec, broken = _lower_spec(spec_node, version, diags)
        if not broken:
            specs.append(spec)
        elif spec is not BAD:
            partials.append((spec, broken))
    if not node.specs:
        diags.error(None, "the file holds no spec", "spec NAME { ... }")
    from ..check import check_spec

    problems = [d for spec in specs for d in check_spec(spec)]
    problems += [d for partial, broken in partials for d in check_spec(partial, skip=broken)]
    if diags.items or problems:
        raise SpecError([*diags.items, *problems])
    return tuple(specs)


def _lower_spec(node: SpecNode, version: int, diags: Diagnostics):
    block = Block(node.body, f"spec '{node.name}'", diags)
    values = Values(diags)
    kwargs: dict = {"name": node.name, "version": version}
    s = block.take("model")
    kwargs["model"] = None if s is None else _model(s, values, diags)
    s = block.take("data")
    kwargs["data"] = None if s is None else _data(s, values, diags)
    s = block.take("input")
    kwargs["domain"] = None if s is None else _domain(s, values, diags)
    s = block.take("seed")
    if s is not None:
        kwargs["seed"] = values.integer(s.value, "seed", s.span, bounds=(0, SEED_MAX))
    s = block.take("threat")
    kwargs["threat"] = None if s is None else lower_threat(s, diags)
    s = block.take("require")
    if s is not None:  # `require outputs { ... }` has a block; lower_property checks blocks
        kwargs["require"] = lower_property(s, diags)
    kwargs["preprocess"] = tuple(
        _preprocess(s, values, diags) for s in block.take_all("preprocess")
    )
    actions = [lower_action(s, diags) for s in block.stmts if s.key in ACTIONS]
    block.used.update(i for i, s in enumerate(block.stmts) if s.key in ACTIONS)
    kwargs["actions"] = tuple(actions)
    block.reject_rest(SPEC_KEYS)
    # Parts that failed are left out so the cross-node checks still run on the rest
    # (all of a file's problems are reported at once); `broken` names what was left out.
    broken = {k for k, v in kwargs.items() if v is BAD}
    if BAD in kwargs["actions"] or BAD in kwargs["preprocess"]:
        broken.add("actions")
    partial = {k: (None if v is BAD else v) for k, v in kwargs.items()}
    partial["actions"] = tuple(a for a in actions if a is not BAD)
    partial["preprocess"] = tuple(p for p in partial["preprocess"] if p is not BAD)
    partial["seed"] = 0 if partial.get("seed") is None else partial["seed"]
    try:
        return Spec(**partial, span=node.span), frozenset(broken)
    except (TypeError, ValueError) as err:  # never drop a spec without a word
        diags.error(node.span, str(err))
        return BAD, frozenset(broken | {"spec"})


def _model(stmt: Stmt, values: Values, diags: Diagnostics):
    v = stmt.value
    block = Block(stmt.block, "model", diags)
    arch_stmt = block.take("arch")
    arch = (
        None
        if arch_stmt is None
        else values.identifier(arch_stmt.value, "architecture", arch_stmt.span)
    )
    options = block.options(values)
    if isinstance(v, Name):
        if arch_stmt is not None:
            diags.error(arch_stmt.key_span, "`arch` is only for weights loaded from a file")
        return build(
            diags, ModelRef, stmt.span, {}, kind=ModelKind.BUILTIN, name=v.text, options=options
        )
    if isinstance(v, Call) and v.name in MODEL_FILE_KINDS:
        args = call_args(diags, v, (1, 1), f'{v.name}("path")')
        path = BAD if args is BAD else values.string(args[0], f"{v.name} path", v.span)
        spans = {"arch": stmt.span, "name": v.span}
        return build(
            diags,
            ModelRef,
            stmt.span,
            spans,
            kind=MODEL_FILE_KINDS[v.name],
            name=path,
            arch=arch,
            options=options,
        )
    usage = 'a builtin architecture name, state_dict("w.pt") { arch NAME }, torchscript("m.pt"), onnx("m.onnx") or python("module:function")'
    where = v.span if v is not None else stmt.span
    return diags.error(where, f"model expects a reference, got {describe(v)}", usage)


def _data(stmt: Stmt, values: Values, diags: Diagnostics):
    source = values.identifier(stmt.value, "data source", stmt.key_span)
    block = Block(stmt.block, "data", diags)
    kwargs, spans = {}, {}
    readers = {
        "path": values.string,
        "train_limit": values.integer,
        "test_limit": values.integer,
        "resize": values.integer,
        "test_fraction": values.real,
        "classes": lambda v, w, s: values.many(v, w, s, values.integer),
    }
    for key, read in readers.items():
        s = block.take(key)
        if s is not None:
            kwargs[key] = read(s.value, key, s.span)
            spans[key] = s.span
    spans.setdefault("path", stmt.span)
    if source is not BAD and source not in CORE_SOURCES:
        options = block.options(values)  # the backend that declares the source checks these
    else:
        block.reject_rest(list(readers))
        options = ()
    return build(diags, DataRef, stmt.span, spans, source=source, options=options, **kwargs)


def _domain(stmt: Stmt, values: Values, diags: Diagnostics):
    if stmt.block is None:
        return diags.error(
            stmt.span, "input takes a block", "input { shape (1, 28, 28)  range [0, 1] }"
        )
    block = Block(stmt.block, "input", diags)
    kwargs, spans = {}, {}
    s = block.take("shape")
    if s is None:
        kwargs["shape"] = diags.error(stmt.span, "input needs a `shape`", "shape (1, 28, 28)")
    else:
        kwargs["shape"] = values.many(s.value, "shape", s.span, values.integer)
        spans["shape"] = s.span
    r = block.take("range")
    if r is not None:
        pair = values.pair(r.value, "range", r.span, values.real)
        kwargs["low"], kwargs["high"] = (BAD, BAD) if pair is BAD else pair
        spans["range"] = r.span
    block.reject_rest(["shape", "range"])
    return build(diags, Domain, stmt.span, spans, **kwargs)


def _preprocess(stmt: Stmt, values: Values, diags: Diagnostics):
    kind = values.enum(stmt.value, PreprocessKind, "preprocessing defence", stmt.key_span)
    block = Block(stmt.block, "preprocess", diags)
    return build(diags, Preprocess, stmt.span, {}, kind=kind, options=block.options(values))
