"""Lower an exported core-ATen graph to a :class:`BoundGraph`, op by op, through a public
registry of rules (:func:`register_op`), so plugins can teach the engine new ops.

Values during lowering are one of:

- :class:`Var` — a tensor computed from the model's input: a node of the bound graph;
- :class:`Const` — anything that does not depend on the input (parameters, buffers, constants
  and every op applied to them), read when used, so trained weights are always current;
- :class:`BatchDependent` — a value computed from the batch size (``x.size(0)``), resolved
  when the graph runs.

An op on computed tensors with no rule, a random op, and a tensor whose first dimension is not
the batch dimension are refused by name and source line: what is bounded is exactly the
exported computation, row by row.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

import attrs
import torch
import torch.fx as fx
from torch import Tensor, nn

from .base import BoundOp
from .dag import BoundGraph, Node
from .errors import UnsupportedOp


@attrs.frozen
class Var:
    """Node ``index`` of the bound graph."""

    index: int


@attrs.frozen(eq=False)
class Const:
    """A value independent of the input, computed on each read."""

    fn: Callable[[], Any]

    def value(self) -> Any:
        return self.fn()


@attrs.frozen(eq=False)
class BatchDependent:
    """A value computed from the batch size ``n``."""

    fn: Callable[[int], Any]


@attrs.frozen(eq=False)
class Refused:
    """An output of a multi-output op that has no sound meaning (max-pool indices, a dropout
    mask): an error as soon as anything reads it."""

    why: str


@attrs.frozen
class Lowered:
    """What a rule returns for a tensor op: the bound op and the graph values it reads."""

    op: BoundOp
    inputs: tuple[Var, ...]
    then: tuple[BoundOp, ...] = ()  # single-input ops applied after ``op``, in order


@attrs.frozen(eq=False)
class Call:
    """One call of an op on at least one computed tensor, as a rule sees it."""

    target: Any
    args: tuple
    kwargs: dict
    name: str  # e.g. 'aten.relu.default'
    where: str  # "'module.path' (file.py:12 in forward)"
    out_shape: tuple[int, ...]  # the output's shape without the batch dimension
    in_shapes: tuple[tuple[int, ...] | None, ...]  # per positional arg (None: not a tensor)

    def refuse(self, why: str) -> NoReturn:
        raise UnsupportedOp(self.name, self.where, why)

    def var(self, i: int = 0) -> Var:
        v = self.args[i]
        if not isinstance(v, Var):
            self.refuse(f"argument {i} must be the computed tensor")
        return v

    def const(self, v: Any) -> Callable[[], Any]:
        """A reader for a constant argument (refused when it depends on the input)."""
        if isinstance(v, Var):
            self.refuse("an argument that must be constant depends on the input")
        if isinstance(v, BatchDependent):
            self.refuse("a tensor built from the batch size is not a constant of the model")
        if isinstance(v, Const):
            return v.fn
        value = resolve(v)
        return lambda: value

    def value(self, v: Any) -> Any:
        """A constant argument's current value (shapes, dims, scalars)."""
        return self.const(v)()

    def dim(self, d: int, rank: int) -> int:
        """``d`` normalised, refused when it is the batch dimension."""
        d = d + rank if d < 0 else d
        if d == 0:
            self.refuse("it mixes rows of the batch (acts on dimension 0)")
        return d


Rule = Callable[[Call], "Lowered | Any"]

_RULES: dict[Any, Rule] = {}


def register_op(target: Any, rule: Rule) -> None:
    """Teach the engine an ATen op (an ``OpOverload`` such as ``torch.ops.aten.relu.default``).

    ``rule(call)`` returns :class:`Lowered` (a :class:`BoundOp` with sound ``interval`` and
    ``backward`` rules, and the :class:`Var` inputs it reads), or raises via
    ``call.refuse(why)``. A rule registered later replaces an earlier one."""
    _RULES[target] = rule


def live(name: str) -> property:
    """An attribute read through the callable ``self._live[name]`` on every use (so training
    after capture is bounded as trained); assignments by a base class's ``__init__`` are
    ignored."""
    return property(lambda self: self._live[name](), lambda self, value: None)


def registered_ops() -> tuple[Any, ...]:
    return tuple(_RULES)


def resolve(v: Any, n: int | None = None) -> Any:
    """The concrete value of a constant (nested in lists/tuples); batch-dependent values need
    the batch size ``n``."""
    if isinstance(v, Const):
        return v.fn()
    if isinstance(v, BatchDependent):
        if n is None:
            raise TypeError("a batch-dependent value needs the batch size")
        return v.fn(n)
    if isinstance(v, Refused):
        raise TypeError(v.why)
    if isinstance(v, list | tuple):
        return type(v)(resolve(e, n) for e in v)
    if isinstance(v, dict):
        return {k: resolve(e, n) for k, e in v.items()}
    return v


def flat(v: Any) -> list[Any]:
    if isinstance(v, list | tuple):
        return [e for x in v for e in flat(x)]
    if isinstance(v, dict):
        return [e for x in v.values() for e in flat(x)]
    return [v]


# --- where a node came from --------------------------------------------------------------
_FRAME = re.compile(r'File "([^"]+)", line (\d+), in (\S+)')


def where(node: fx.Node) -> str:
    """``'module.path' (file.py:12 in forward)`` for the user's code that made ``node``."""
    stack = node.meta.get("nn_module_stack") or {}
    path = ""
    for v in stack.values():
        path = v[0] if isinstance(v, tuple) else str(v)
    path = path or "<model>"
    src = ""
    frames = _FRAME.findall(node.meta.get("stack_trace") or "")
    for file, line, fn in frames:
        if "/torch/" not in file:
            src = f"{file.rsplit('/', 1)[-1]}:{line} in {fn}"
    if not src and frames:
        file, line, fn = frames[-1]
        src = f"{file.rsplit('/', 1)[-1]}:{line} in {fn}"
    return f"'{path}'" + (f" ({src})" if src else "")


def op_name(target: Any) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return f"aten.{target._schema.name.split('::')[-1]}.{target._overloadname}"
    return getattr(target, "__name__", None) or repr(target)


def _random(target: Any) -> bool:
    tags = getattr(target, "tags", ())
    if torch.Tag.nondeterministic_seeded in tags:
        return True
    return bool(re.search(r"rand|normal|bernoulli|multinomial|poisson|dropout", op_name(target)))


# --- the lowering --------------------------------------------------------------------------
class Lowering:
    """Walks an exported program's graph once, in order."""

    def __init__(self, ep: torch.export.ExportedProgram, model: nn.Module) -> None:
        self.ep, self.model = ep, model
        self.nodes: list[Node] = []
        self.env: dict[fx.Node, Any] = {}
        self.batch: str | None = None
        sig = ep.graph_signature
        self.params = {**sig.inputs_to_parameters, **sig.inputs_to_buffers}
        self.constants = dict(getattr(sig, "inputs_to_lifted_tensor_constants", {}))
        self.user_inputs = list(sig.user_inputs)

    def add(self, op: BoundOp | None, inputs: Sequence[Var], name: str, where_: str) -> Var:
        self.nodes.append(Node(op, tuple(v.index for v in inputs), name, where_))
        return Var(len(self.nodes) - 1)

    def run(self) -> BoundGraph:
        out: Any = None
        for node in self.ep.graph.nodes:
            if node.op == "output":
                out = fx.node.map_aggregate(node.args[0], self._lookup)
                break
            self.env[node] = self._lower(node)
        if isinstance(out, list | tuple) and len(out) == 1:
            out = out[0]
        if not isinstance(out, Var):
            raise UnsupportedOp(
                "output",
                "<model>",
                "the model must return one tensor computed from its input",
            )
        return prune(self.nodes, out.index)

    def _lookup(self, v: Any) -> Any:
        return self.env[v] if isinstance(v, fx.Node) else v

    def _placeholder(self, node: fx.Node) -> Any:
        name = node.name
        if name in self.params:
            return Const(_attribute(self.model, self.params[name]))
        if name in self.constants:
            value = self.ep.constants[self.constants[name]]
            return Const(lambda: value)
        if self.nodes:
            raise UnsupportedOp("input", "<model>", "the model takes more than one input")
        shape = node.meta["val"].shape
        if isinstance(shape[0], int):
            raise UnsupportedOp(
                "input",
                "<model>",
                "the model fixes its batch size (torch.export specialised dimension 0); "
                "write it for any batch size",
            )
        self.batch = str(shape[0])
        return self.add(None, (), node.name, "input")

    def _lower(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            return self._placeholder(node)
        if node.op == "get_attr":
            value = getattr(self.ep.graph_module, str(node.target))
            return Const(lambda: value)
        if node.op != "call_function":
            raise UnsupportedOp(str(node.target), where(node), f"unexpected graph node {node.op}")
        args = fx.node.map_aggregate(node.args, self._lookup)
        kwargs = fx.node.map_aggregate(node.kwargs, self._lookup)
        leaves = flat((args, kwargs))
        target, name, at = node.target, op_name(node.target), where(node)
        if target is operator.getitem:
            return self._getitem(args, name, at)
        for v in leaves:
            if isinstance(v, Refused):
                raise UnsupportedOp(name, at, v.why)
        variables = [v for v in leaves if isinstance(v, Var)]
        if not variables:
            return self._constant(node, target, args, kwargs, name, at)
        if target is torch.ops.aten.sym_size.int:
            dim = args[1]
            if dim == 0:
                return BatchDependent(lambda n: n)
            return int(node.meta["val"])
        if _random(target) and target not in _RULES:
            raise UnsupportedOp(name, at, "random values cannot be bounded")
        rule = _RULES.get(target)
        if rule is None:
            raise UnsupportedOp(name, at, f"no bound rule for {name}")
        call = Call(
            target,
            tuple(args),
            dict(kwargs),
            name,
            at,
            self._row_shape(node, name, at),
            tuple(_row_shape_of(a) for a in node.args),
        )
        return self._materialise(rule(call), node.name, at)

    def _materialise(self, result: Any, name: str, at: str) -> Any:
        if isinstance(result, Lowered):
            var = self.add(result.op, result.inputs, name, at)
            for op in result.then:
                var = self.add(op, (var,), name, at)
            return var
        if isinstance(result, tuple):  # a multi-output op: its outputs are read by getitem
            return tuple(self._materialise(r, name, at) for r in result)
        return result

    def _constant(self, node, target, args, kwargs, name: str, at: str) -> Any:
        if _random(target):
            raise UnsupportedOp(name, at, "random values are not a constant of the model")
        if any(isinstance(v, BatchDependent) for v in flat((args, kwargs))):
            return BatchDependent(lambda n: target(*resolve(args, n), **resolve(kwargs, n)))
        if any(isinstance(v, Const) for v in flat((args, kwargs))):
            return Const(lambda: target(*resolve(args), **resolve(kwargs)))
        value = target(*args, **kwargs)  # plain Python values: fold now
        return Const(lambda: value) if isinstance(value, Tensor) else value

    def _getitem(self, args, name: str, at: str) -> Any:
        seq, i = args
        if isinstance(seq, Const):
            return Const(lambda: seq.fn()[i])
        if isinstance(seq, BatchDependent):
            return BatchDependent(lambda n: seq.fn(n)[i])
        return seq[i]  # a Refused item raises only where it is read

    def _row_shape(self, node: fx.Node, name: str, at: str) -> tuple[int, ...]:
        """The output's shape without its batch dimension; refused when the first dimension
        is not the batch (the op would mix or drop rows)."""
        val = node.meta.get("val")
        if isinstance(val, list | tuple):
            val = val[0]
        if not isinstance(val, Tensor):
            return ()
        shape = val.shape
        if len(shape) == 0 or str(shape[0]) != self.batch:
            raise UnsupportedOp(
                name,
                at,
                f"its output of shape {tuple(str(s) for s in shape)} does not keep the batch "
                "dimension first, so rows of the batch would be mixed",
            )
        rest = []
        for s in shape[1:]:
            if not isinstance(s, int):
                raise UnsupportedOp(name, at, f"a dimension depends on the batch size ({s})")
            rest.append(int(s))
        return tuple(rest)


def _row_shape_of(arg: Any) -> tuple[int, ...] | None:
    if not isinstance(arg, fx.Node):
        return None
    val = arg.meta.get("val")
    if not isinstance(val, Tensor):
        return None
    try:
        return tuple(int(s) for s in val.shape[1:])
    except TypeError:
        return None


def _attribute(model: nn.Module, path: str) -> Callable[[], Any]:
    """A reader of the model's parameter or buffer at ``path`` (live: training updates it)."""
    owner_path, _, leaf = path.rpartition(".")
    owner = model.get_submodule(owner_path)
    return lambda: getattr(owner, leaf)


def prune(nodes: list[Node], output: int) -> BoundGraph:
    """Keep the nodes the output depends on, renumbered in order."""
    live = {output}
    for i in range(output, -1, -1):
        if i in live:
            live.update(nodes[i].inputs)
    keep = sorted(live | {0})
    new = {old: k for k, old in enumerate(keep)}
    return BoundGraph(
        [attrs.evolve(nodes[i], inputs=tuple(new[j] for j in nodes[i].inputs)) for i in keep]
    )
