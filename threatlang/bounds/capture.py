"""Capture the computation a model performs (``torch.fx``) and lower it to a :class:`BoundGraph`.

A module is bounded by its type only when it is one of the supported library layers *and*
runs the library's own ``forward``; every other module (a user's ``nn.Sequential`` subclass
with a skip connection, a block whose ``forward`` adds its input back) is traced into, so
what is bounded is what ``forward`` computes. An op with no sound rule raises
:class:`UnsupportedOp` naming the op, its module path and source line; a ``forward`` that
``torch.fx`` cannot trace (data-dependent control flow) is refused the same way.
"""

from __future__ import annotations

import builtins
import functools
import operator
import re
import sys
from collections.abc import Callable
from typing import Any

import attrs
import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import Tensor, nn

from .affine import (
    BoundAvgPool2d,
    BoundBatchNorm,
    BoundConstArith,
    BoundConv2d,
    BoundFlatten,
    BoundIdentity,
    BoundLinear,
    BoundReshape,
    LinearParams,
)
from .base import BoundOp
from .dag import BoundGraph, Node
from .errors import UnsupportedLayer, UnsupportedOp
from .merge import BoundAdd, BoundCat
from .nonlinear import BoundMaxPool2d, BoundReLU

_BN = nn.modules.batchnorm._BatchNorm

#: (library class, methods that must be the library's, bound op): a module is bounded by its
#: type only when all those methods are inherited unchanged
LEAF_RULES: tuple[tuple[type[nn.Module], tuple[str, ...], Callable[[Any], BoundOp]], ...] = (
    (nn.Linear, ("forward",), BoundLinear),
    (nn.Conv2d, ("forward", "_conv_forward"), BoundConv2d),
    (_BN, ("forward",), BoundBatchNorm),
    (nn.Flatten, ("forward",), BoundFlatten),
    (nn.AvgPool2d, ("forward",), BoundAvgPool2d),
    (nn.MaxPool2d, ("forward",), BoundMaxPool2d),
    (nn.ReLU, ("forward",), BoundReLU),
    (nn.Identity, ("forward",), BoundIdentity),
    (nn.Dropout, ("forward",), BoundIdentity),  # bounds are for the eval-mode network
)

_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


def leaf_rule(m: nn.Module) -> Callable[[Any], BoundOp] | None:
    """The bound op for ``m`` when it runs exactly a supported library layer's code."""
    for base, methods, make in LEAF_RULES:
        if isinstance(m, base) and all(
            getattr(type(m), k, None) is getattr(base, k) for k in methods
        ):
            return make
    return None


def _is_library(m: nn.Module) -> bool:
    return type(m).__module__.startswith("torch.") and not isinstance(m, _CONTAINERS)


class _Tracer(fx.Tracer):
    """Leaves: supported layers running library code, and other library layers (refused by
    name at lowering). Everything user-defined is traced through."""

    def create_node(self, kind, target, args, kwargs, name=None, type_expr=None):  # noqa: ANN001
        """Records the innermost user frame (fx's own stack traces import torch's compiler
        stack, seconds on first use)."""
        node = super().create_node(kind, target, args, kwargs, name, type_expr)
        torch_dir = _torch_dir()
        f = sys._getframe(1)
        while f is not None and f.f_code.co_filename.startswith(torch_dir):
            f = f.f_back
        if f is not None:
            file = f.f_code.co_filename.rsplit("/", 1)[-1]
            node.meta["user_frame"] = f"{file}:{f.f_lineno} in {f.f_code.co_name}"
        return node

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return leaf_rule(m) is not None or _is_library(m)


class _Root(nn.Module):
    """Wraps the model so that the model itself is a call (a bare ``nn.Linear`` is a leaf)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


# --- values of traced nodes during lowering ------------------------------------------------
@attrs.frozen
class _Var:
    """A computed tensor: node ``index`` of the bound graph."""

    index: int


@attrs.frozen(eq=False)
class _Const:
    """A constant (read when used, so trained parameters and buffers are current)."""

    fn: Callable[[], Any]


@attrs.frozen(eq=False)
class _Meta:
    """A value computed from tensor shapes (``x.size(0)``): ``fn(shapes by var index)``."""

    fn: Callable[[dict[int, torch.Size]], Any]
    sources: frozenset[int]
    size_of: tuple[int, int] | None = None  # (var index, dim) when it is ``x.size(dim)``


def _flat(v: Any) -> list[Any]:
    if isinstance(v, list | tuple):
        return [e for x in v for e in _flat(x)]
    if isinstance(v, dict):
        return [e for x in v.values() for e in _flat(x)]
    return [v]


def _value(v: Any, shapes: dict[int, torch.Size] | None = None) -> Any:
    """Concrete value of a constant / shape expression (nested in lists and tuples)."""
    if isinstance(v, _Const):
        return v.fn()
    if isinstance(v, _Meta):
        return v.fn(shapes or {})
    if isinstance(v, list | tuple):
        return type(v)(_value(e, shapes) for e in v)
    if isinstance(v, dict):
        return {k: _value(e, shapes) for k, e in v.items()}
    return v


def _fn_name(target: Any) -> str:
    if isinstance(target, str):
        return target
    return getattr(target, "__name__", None) or repr(target)


_RANDOM = re.compile(r"rand|normal|bernoulli|multinomial|poisson|dropout|uniform|exponential")

_ADD = {operator.add, operator.iadd, torch.add, "add", "add_", "__add__", "__radd__"}
_SUB = {operator.sub, operator.isub, torch.sub, torch.subtract, "sub", "sub_", "subtract"}
_MUL = {operator.mul, operator.imul, torch.mul, torch.multiply, "mul", "mul_", "multiply"}
_DIV = {
    operator.truediv,
    operator.itruediv,
    torch.div,
    torch.true_divide,
    torch.divide,
    "div",
    "div_",
    "true_divide",
    "divide",
}
_NEG = {operator.neg, torch.neg, torch.negative, "neg", "negative"}
_RELU = {F.relu, torch.relu, torch.relu_, "relu", "relu_"}
_IDENTITY = {"contiguous", "clone", "detach", torch.clone, F.dropout, F.dropout1d, F.dropout2d}
_RESHAPE = {torch.reshape, "reshape", "view"}
_FLATTEN = {torch.flatten, "flatten"}
_CAT = {torch.cat, torch.concat, torch.concatenate}
_AVGPOOL = {F.avg_pool2d}
_MAXPOOL = {F.max_pool2d, "max_pool2d"}
_SHAPE = {"size", "dim"}


def _hashable_in(target: Any, group: set) -> bool:
    try:
        return target in group
    except TypeError:
        return False


@functools.cache
def _torch_dir() -> str:
    return torch.__file__.rsplit("/", 1)[0]


def _source_line(node: fx.Node) -> str:
    """``file:line in function`` of the innermost user frame that created ``node``, or ''."""
    return node.meta.get("user_frame", "")


def _module_path(node: fx.Node) -> str:
    if node.op == "call_module":
        path = str(node.target)
    else:
        stack = node.meta.get("nn_module_stack") or {}
        path = ""
        for v in stack.values():
            path = v[0] if isinstance(v, tuple) else str(v)
    path = path.removeprefix("net").removeprefix(".")
    return path or "<model>"


def _where(node: fx.Node) -> str:
    src = _source_line(node)
    return f"'{_module_path(node)}'" + (f" ({src})" if src else "")


class _Lowering:
    def __init__(self, root: nn.Module, graph: fx.Graph) -> None:
        self.root, self.graph = root, graph
        self.nodes: list[Node] = []
        self.env: dict[fx.Node, Any] = {}

    def add(self, op: BoundOp | None, inputs: tuple[int, ...], name: str, where: str) -> _Var:
        self.nodes.append(Node(op, inputs, name, where))
        return _Var(len(self.nodes) - 1)

    def run(self) -> BoundGraph:
        out = None
        for node in self.graph.nodes:
            if node.op == "output":
                out = fx.node.map_aggregate(node.args[0], self._lookup)
                break
            self.env[node] = self._lower(node)
        if not isinstance(out, _Var):
            raise UnsupportedOp(
                "output", "<model>", "the model must return one tensor computed from its input"
            )
        return _prune(self.nodes, out.index)

    def _lookup(self, v: Any) -> Any:
        return self.env[v] if isinstance(v, fx.Node) else v

    def _lower(self, node: fx.Node) -> Any:
        if node.op == "placeholder":
            if self.nodes:
                if node.args:  # an optional argument left at its default
                    return node.args[0]
                raise UnsupportedOp("input", "<model>", "the model takes more than one input")
            return self.add(None, (), node.name, "input")
        if node.op == "get_attr":
            path = str(node.target)
            return _Const(lambda: functools.reduce(getattr, path.split("."), self.root))
        args = fx.node.map_aggregate(node.args, self._lookup)
        kwargs = fx.node.map_aggregate(node.kwargs, self._lookup)
        leaves = _flat((args, kwargs))
        var = [v for v in leaves if isinstance(v, _Var)]
        meta = [v for v in leaves if isinstance(v, _Meta)]
        if node.op == "call_module":
            return self._module(node, args, kwargs, var)
        name = _fn_name(node.target)
        where = _where(node)
        if not var:
            if _RANDOM.search(name):
                raise UnsupportedOp(name, where, "random values are not a constant of the model")
            return self._constant(node, args, kwargs, meta)
        if _hashable_in(node.target, _SHAPE) or (
            node.target is builtins.getattr and args[1] == "shape"
        ):
            return self._shape(node, args, kwargs)
        if _RANDOM.search(name) and not _hashable_in(node.target, _IDENTITY):
            raise UnsupportedOp(name, where, "random values cannot be bounded")
        self._check_inplace(node, name, where)
        return self._function(node, name, where, args, kwargs)

    # --- modules -----------------------------------------------------------------------------
    def _module(self, node: fx.Node, args, kwargs, var: list[_Var]) -> Any:
        m = self.root.get_submodule(str(node.target))
        kind = type(m).__name__
        where = _where(node)
        if not var:
            return _Const(lambda: m(*_value(args), **_value(kwargs)))
        make = leaf_rule(m)
        if make is None:
            lib = "" if _is_library(m) else " (its forward could not be traced into)"
            raise UnsupportedOp(kind, where, f"no bound rule for {kind}{lib}")
        if len(args) != 1 or kwargs or not isinstance(args[0], _Var):
            raise UnsupportedOp(kind, where, "called with more than one tensor argument")
        if getattr(m, "inplace", False):
            self._check_inplace(node, kind, where, force=True)
        try:
            op = make(m)
        except UnsupportedLayer as err:
            raise UnsupportedOp(kind, where, err.why) from None
        return self.add(op, (args[0].index,), node.name, where)

    # --- constants and shapes ------------------------------------------------------------------
    def _constant(self, node: fx.Node, args, kwargs, meta: list[_Meta]) -> Any:
        target = node.target

        def call(shapes: dict[int, torch.Size] | None = None) -> Any:
            a, k = _value(args, shapes), _value(kwargs, shapes)
            if node.op == "call_method":
                return getattr(a[0], target)(*a[1:], **k)
            return target(*a, **k)

        if meta:
            return _Meta(call, frozenset().union(*(m.sources for m in meta)))
        return _Const(call)

    def _shape(self, node: fx.Node, args, kwargs) -> _Meta:
        x = args[0]
        if not isinstance(x, _Var):
            raise UnsupportedOp(_fn_name(node.target), _where(node), "shape of a non-tensor")
        i = x.index
        if node.target == "dim":
            return _Meta(lambda s: len(s[i]), frozenset({i}))
        if node.target == "size":
            dim = args[1] if len(args) > 1 else kwargs.get("dim")
            if dim is None:
                return _Meta(lambda s: s[i], frozenset({i}))
            if not isinstance(dim, int):
                raise UnsupportedOp("size", _where(node), "size with a computed dimension")
            return _Meta(lambda s: s[i][dim], frozenset({i}), size_of=(i, dim))
        return _Meta(lambda s: s[i], frozenset({i}))  # x.shape

    def _check_inplace(self, node: fx.Node, name: str, where: str, force: bool = False) -> None:
        """An in-place op whose input is read elsewhere changes what that reader sees, which
        the dataflow graph would not show: refuse it."""
        inplace = (
            force
            or name.endswith("_")
            or node.target
            in (
                operator.iadd,
                operator.isub,
                operator.imul,
                operator.itruediv,
            )
        )
        inplace = inplace or bool(node.kwargs.get("inplace"))
        if not inplace or not node.args or not isinstance(node.args[0], fx.Node):
            return
        if len(node.args[0].users) > 1:
            raise UnsupportedOp(
                name, where, "in-place update of a tensor that is also read elsewhere"
            )

    # --- functions and methods on computed tensors ------------------------------------------
    def _function(self, node: fx.Node, name: str, where: str, args, kwargs) -> Any:
        t = node.target
        grp = functools.partial(_hashable_in, t)

        def arith(kind: str, c: Any) -> _Var:
            x = next(a for a in args[:2] if isinstance(a, _Var))
            if isinstance(c, _Meta):
                raise UnsupportedOp(name, where, "arithmetic with a shape-dependent value")
            return self.add(
                BoundConstArith(kind, lambda: _value(c), name, where), (x.index,), node.name, where
            )

        if grp(_ADD) or grp(_SUB):
            a, b = args[0], args[1]
            alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
            sub = grp(_SUB)
            if isinstance(a, _Var) and isinstance(b, _Var):
                if alpha != 1:
                    raise UnsupportedOp(name, where, "alpha other than 1 between two tensors")
                return self.add(
                    BoundAdd(-1.0 if sub else 1.0, name, where),
                    (a.index, b.index),
                    node.name,
                    where,
                )
            if isinstance(b, _Var):  # constant (+|-) alpha * x
                if alpha != 1:
                    raise UnsupportedOp(name, where, "alpha other than 1")
                return arith("rsub" if sub else "add", a)
            c = b if alpha == 1 else _Const(lambda: _value(b) * alpha)
            return arith("sub" if sub else "add", c)
        if grp(_MUL):
            if all(isinstance(a, _Var) for a in args[:2]):
                raise UnsupportedOp(
                    name, where, "the product of two computed tensors is not linear"
                )
            c = args[1] if isinstance(args[0], _Var) else args[0]
            return arith("mul", c)
        if grp(_DIV):
            if kwargs.get("rounding_mode") is not None:
                raise UnsupportedOp(name, where, "rounding division")
            if not isinstance(args[0], _Var) or isinstance(args[1], _Var):
                raise UnsupportedOp(name, where, "division by a computed tensor is not linear")
            return arith("div", args[1])
        if grp(_NEG):
            return arith("neg", None)
        x = args[0]
        if not isinstance(x, _Var) or any(isinstance(v, _Var) for v in _flat((args[1:], kwargs))):
            if grp(_CAT):
                return self._cat(node, name, where, args, kwargs)
            raise UnsupportedOp(name, where, "no bound rule for this operation")
        if grp(_RELU):
            return self.add(BoundReLU(nn.ReLU()), (x.index,), node.name, where)
        if grp(_IDENTITY):
            return self.add(BoundIdentity(nn.Identity()), (x.index,), node.name, where)
        if grp(_FLATTEN) or grp(_RESHAPE):
            return self._reshape(node, name, where, args, kwargs)
        if grp(_AVGPOOL) or grp(_MAXPOOL):
            return self._pool(node, name, where, args, kwargs, grp(_MAXPOOL))
        if t is F.linear:
            w, b = args[1], (args[2] if len(args) > 2 else kwargs.get("bias"))
            params = _LazyLinear(lambda: _value(w), lambda: _value(b))
            return self.add(BoundLinear(params), (x.index,), node.name, where)
        raise UnsupportedOp(name, where, "no bound rule for this operation")

    def _cat(self, node, name, where, args, kwargs) -> _Var:
        parts = args[0]
        dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        if not isinstance(parts, list | tuple) or not all(isinstance(p, _Var) for p in parts):
            raise UnsupportedOp(name, where, "concatenation with constants")
        if not isinstance(dim, int):
            raise UnsupportedOp(name, where, "concatenation along a computed dimension")
        return self.add(BoundCat(dim, name, where), tuple(p.index for p in parts), node.name, where)

    def _reshape(self, node, name, where, args, kwargs) -> _Var:
        x: _Var = args[0]
        rest = args[1:]
        if _hashable_in(node.target, _FLATTEN):
            start = rest[0] if rest else kwargs.get("start_dim", 0)
            end = rest[1] if len(rest) > 1 else kwargs.get("end_dim", -1)
            if (start, end) == (1, -1):
                return self.add(BoundFlatten(nn.Flatten()), (x.index,), node.name, where)

            def fn(t: Tensor, shapes: dict) -> Tensor:
                return torch.flatten(t, start, end)

            return self.add(BoundReshape(fn, (), name, where), (x.index,), node.name, where)
        shape = rest[0] if len(rest) == 1 and isinstance(rest[0], list | tuple) else rest
        shape = shape or kwargs.get("shape", ())
        size0 = shape[0] if shape else None
        if (
            len(shape) == 2
            and isinstance(size0, _Meta)
            and size0.size_of == (x.index, 0)
            and shape[1] == -1
        ):
            return self.add(BoundFlatten(nn.Flatten()), (x.index,), node.name, where)
        metas = [v for v in _flat(shape) if isinstance(v, _Meta)]
        sources = tuple(sorted(frozenset().union(*(m.sources for m in metas)))) if metas else ()

        def fn(t: Tensor, shapes: dict) -> Tensor:
            return t.reshape(*_value(tuple(shape), shapes))

        inputs = (x.index, *sources)
        return self.add(BoundReshape(fn, sources, name, where), inputs, node.name, where)

    def _pool(self, node, name, where, args, kwargs, is_max: bool) -> _Var:
        names = (
            ("kernel_size", "stride", "padding", "dilation", "ceil_mode", "return_indices")
            if is_max
            else (
                "kernel_size",
                "stride",
                "padding",
                "ceil_mode",
                "count_include_pad",
                "divisor_override",
            )
        )
        params = dict(zip(names, _value(args[1:]), strict=False))
        params.update({k: _value(v) for k, v in kwargs.items()})
        if params.get("return_indices"):
            raise UnsupportedOp(name, where, "pooling that returns indices")
        try:
            if is_max:
                op: BoundOp = BoundMaxPool2d(nn.MaxPool2d(**params))
            else:
                op = BoundAvgPool2d(nn.AvgPool2d(**params))
        except UnsupportedLayer as err:
            raise UnsupportedOp(name, where, err.why) from None
        return self.add(op, (args[0].index,), node.name, where)


class _LazyLinear(LinearParams):
    """``F.linear`` with weights that are constants of the graph (read on every use)."""

    def __init__(self, weight: Callable[[], Tensor], bias: Callable[[], Tensor | None]) -> None:
        self._w, self._b = weight, bias

    @property
    def weight(self) -> Tensor:  # type: ignore[override]
        return self._w()

    @property
    def bias(self) -> Tensor | None:  # type: ignore[override]
        return self._b()


def _prune(nodes: list[Node], output: int) -> BoundGraph:
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


def capture(model: nn.Module) -> BoundGraph:
    """The bound graph of ``model``'s eval-mode ``forward`` (traced with ``torch.fx``)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        root = _Root(model)
        try:
            graph = _Tracer().trace(root)
        except UnsupportedOp:
            raise
        except Exception as err:  # fx raises many types for untraceable code
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UnsupportedOp(
                type(model).__name__,
                "its forward",
                f"torch.fx cannot trace the computation ({first}); data-dependent control "
                "flow cannot be bounded",
            ) from None
    finally:
        for m, mode in modes:
            m.training = mode
    return _Lowering(root, graph).run()
