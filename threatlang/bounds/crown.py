"""Bounds on linear functions of a traced network's output: IBP, CROWN, alpha-CROWN.

Public entry point for other verifiers (branch and bound, MIP big-M constants)::

    graph = capture(model)                       # BoundGraph, or UnsupportedOp
    res = bound_graph(graph, lower, upper, "crown", spec=C)
    res.lb, res.ub                               # (N, S): bounds of C @ output per row
    res.pre[r]                                   # Box of ReLU node r's pre-activation

``spec`` ``C`` is (N, S, *out_shape) or (S, *out_shape) (shared); default: the identity
(bounds of every output). ``known`` intersects pre-activation boxes per ReLU node (a ReLU
split sets the lower bound to 0 or the upper bound to 0), ``alphas`` fixes the lower slopes
of unstable neurons per ReLU node (``method="alpha_crown"`` optimises them instead).

CROWN tightens the input box of every op that needs one (every op with ``nonlinear = True``:
ReLU, max-pool, the activations of :mod:`.activations`, inside residual blocks too) by
back-substitution over the DAG, then relaxes the op by its own ``backward``; which neurons
are tightened is the op's :meth:`~.base.BoundOp.unstable`. alpha-CROWN optimises the lower
slopes of ReLUs only; every other op keeps its fixed relaxation (sound either way).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs
import torch
from torch import Tensor

from . import BackwardOptions, BoundGraph, BoundOp, Box, LowerSlope, Trace
from .affine import BoundLinear
from .inputs import BoxInput, InputSet


class Method(enum.Enum):
    IBP = "ibp"
    CROWN_IBP = "crown_ibp"  # linear back-substitution, IBP intermediate bounds
    CROWN = "crown"  # linear back-substitution, intermediate bounds by CROWN too
    ALPHA_CROWN = "alpha_crown"  # CROWN with the final lower slopes optimised


def ibp_exact(graph: BoundGraph) -> list[bool]:
    """Per node: IBP is already exact per neuron (only affine ops since the input, at most one
    of which ``mixes`` elements, the others per-element maps and re-indexing), so CROWN would
    only repeat it."""
    weighted = [0] * len(graph.nodes)
    ok = [True] * len(graph.nodes)
    for i, node in enumerate(graph.nodes[1:], 1):
        ok[i] = node.op.affine and all(ok[j] for j in node.inputs)
        w = max((weighted[j] for j in node.inputs), default=0)
        weighted[i] = w + node.op.mixes
        ok[i] = ok[i] and weighted[i] <= 1
    return ok


def _unstable(consumers: Iterable[BoundOp], box: Box) -> Tensor | None:
    """Neurons of ``box`` whose bounds some consumer's relaxation depends on (None: all)."""
    mask = None
    for op in consumers:
        m = op.unstable(box)
        if m is None:
            return None
        mask = m if mask is None else mask | m
    return mask


def _intersect(a: Box, lo: Tensor, hi: Tensor) -> Box:
    lo = torch.maximum(a.lo, lo)
    hi = torch.minimum(a.hi, hi)
    return Box.from_bounds(lo, torch.maximum(hi, lo))


def node_crown_box(
    graph: BoundGraph,
    i: int,
    inputs: InputSet,
    trace: Trace,
    opts: BackwardOptions,
    box: Box,
    neurons: Tensor | None = None,
    intersect: bool = True,
) -> Box:
    """Node i's box with CROWN bounds for every neuron (``neurons`` None), or for those set in
    the mask ``neurons`` (N, *shape) somewhere in the batch (the unstable ones of the ops it
    feeds: a ReLU's neuron off the kink is relaxed exactly whatever its bounds).
    ``intersect``: keep the tighter of IBP and CROWN per neuron; otherwise the CROWN bounds
    replace IBP's (auto_LiRPA's choice).

    Why both: CROWN with adaptive slopes is not monotone in its intermediate bounds, so
    tighter intermediate boxes usually, not always, give a tighter final bound."""
    bounds = _crown_bounds(graph, i, inputs, trace, opts, box, neurons)
    return box if bounds is None else _combine(box, *bounds, intersect)


def _crown_bounds(
    graph: BoundGraph,
    i: int,
    inputs: InputSet,
    trace: Trace,
    opts: BackwardOptions,
    box: Box,
    neurons: Tensor | None,
) -> tuple[Tensor, Tensor] | None:
    """(lo, hi) of node i: CROWN's for the neurons asked (see :func:`node_crown_box`), IBP's
    for the others; None when none is asked."""
    n, shape = box.centre.shape[0], box.centre.shape[1:]
    lo, hi = box.lo.flatten(1), box.hi.flatten(1)
    d = lo.shape[1]
    if neurons is None:
        idx = torch.arange(d, device=lo.device)
    else:
        idx = neurons.reshape(n, d).any(0).nonzero().flatten()
    k = idx.numel()
    if k == 0:
        return None
    spec = lo.new_zeros(2 * k, d)
    rows = torch.arange(k, device=lo.device)
    spec[rows, idx] = 1.0
    spec[rows + k, idx] = -1.0
    # the same rows for every box: expanded, so back-substitution carries them as one row
    a = spec.reshape(1, 2 * k, *shape).expand(n, -1, *shape)
    bounds = _concretize(graph, i, a, inputs, trace, opts)
    if k == d:
        lo_c, hi_c = bounds[:, :k], -bounds[:, k:]
    else:
        lo_c, hi_c = lo.clone(), hi.clone()
        lo_c[:, idx] = bounds[:, :k]
        hi_c[:, idx] = -bounds[:, k:]
    return lo_c.reshape(n, *shape), hi_c.reshape(n, *shape)


def _combine(
    box: Box, lo_c: Tensor, hi_c: Tensor, intersect: bool, only: Tensor | None = None
) -> Box:
    """The IBP ``box`` intersected with, or replaced by, CROWN's (lo, hi); replacing, only the
    neurons set in the mask ``only`` (N, *shape) somewhere in the batch (None: all)."""
    if intersect:
        return _intersect(box, lo_c, hi_c)
    if only is not None:
        cols = only.reshape(only.shape[0], -1).any(0).reshape(only.shape[1:])
        lo_c, hi_c = torch.where(cols, lo_c, box.lo), torch.where(cols, hi_c, box.hi)
    return Box.from_bounds(lo_c, torch.maximum(hi_c, lo_c))


def _concretize(
    graph: BoundGraph, target: int, a: Tensor, inputs: InputSet, trace: Trace, opts: BackwardOptions
) -> Tensor:
    a_in, bias = graph.back_substitute(target, a, trace, opts)
    if a_in is None:
        return bias
    return inputs.concretize(a_in, bias)


@attrs.frozen
class Pass:
    """Result of the forward pass: the trace CROWN relaxes with, and the kept node boxes."""

    trace: Trace
    boxes: dict[int, Box]


def forward_pass(
    graph: BoundGraph,
    inputs: InputSet,
    opts: BackwardOptions,
    *,
    stop: int | None = None,
    crown: bool = True,
    full: bool = False,
    keep: frozenset[int] | set[int] = frozenset(),
    known: Mapping[int, Box] | None = None,
    intersect: bool = False,
) -> Pass:
    """IBP over nodes ``1..stop-1``; with ``crown``, the box of every node that feeds an op
    needing input bounds (``nonlinear``) and of every node in ``keep`` is tightened by
    back-substitution first, so the relaxation everywhere downstream uses it; only the
    neurons those ops call unstable are, unless ``full`` or the node is kept. ``known``
    (node -> box) is intersected in (sound when the caller restricts the input region, as a
    ReLU split does). ``intersect``: CROWN boxes are intersected with IBP's (see
    :func:`node_crown_box`); otherwise CROWN's bounds replace IBP's on the neurons those ops
    call unstable only (unless ``full``), kept nodes too, as auto_LiRPA does. Boxes of
    ``keep`` nodes and of node ``stop - 1`` are returned."""
    (fp,) = forward_passes(
        graph,
        inputs,
        opts,
        (intersect,),
        stop=stop,
        crown=crown,
        full=full,
        keep=keep,
        known=known,
    )
    return fp


@attrs.define
class _Lane:
    """One forward pass in progress, shared by the intersect modes whose boxes agree so far."""

    modes: list[bool]
    trace: Trace
    boxes: dict[int, Box]
    out: dict[int, Box]

    def fork(self, mode: bool) -> _Lane:
        """A copy for ``mode`` alone (boxes and trace entries so far are shared, never
        written again)."""
        self.modes.remove(mode)
        return _Lane([mode], dict(self.trace), dict(self.boxes), dict(self.out))


def forward_passes(
    graph: BoundGraph,
    inputs: InputSet,
    opts: BackwardOptions,
    modes: tuple[bool, ...] = (True, False),
    *,
    stop: int | None = None,
    crown: bool = True,
    full: bool = False,
    keep: frozenset[int] | set[int] = frozenset(),
    known: Mapping[int, Box] | None = None,
) -> list[Pass]:
    """:func:`forward_pass` for each intersect mode of ``modes``, in that order, computed
    together: the passes run as one until a CROWN box differs between the modes (CROWN
    looser than IBP on some neuron), so each back-substitution before that is done once, and
    passes that never differ are the same :class:`Pass` object."""
    stop = len(graph.nodes) if stop is None else stop
    needs: dict[int, list[BoundOp]] = {}  # node -> the nonlinear ops it feeds
    for node in graph.nodes[1:stop]:
        if node.op.nonlinear:
            for j in node.inputs:
                needs.setdefault(j, []).append(node.op)
    feeds = set(keep) | set(needs)
    exact = ibp_exact(graph) if inputs.is_box else [False] * len(graph.nodes)
    first_only = graph.consumers[0] == [1] and len(graph.nodes) > 1
    lanes = [_Lane(list(dict.fromkeys(modes)), {}, {0: inputs.box()}, {})]
    for i in range(1, stop):
        node = graph.nodes[i]
        tighten = crown and i in feeds and not exact[i] and not node.op.exact_image
        for lane in list(lanes):
            trace, boxes = lane.trace, lane.boxes
            if i == 1 and first_only and node.inputs == (0,):
                trace[id(node.op)] = boxes[0]
                box = inputs.through_first(node.op, trace)
            else:
                box = node.op.interval_all([boxes[j] for j in node.inputs], trace)
            per_mode = {m: box for m in lane.modes}
            # an elementwise op's IBP box is the exact image of its input box, which is
            # already tightened: CROWN through its relaxation could not do better
            if tighten:
                need = None if full else _unstable(needs.get(i, ()), box)
                neurons = None if i in keep and True in lane.modes else need
                bounds = _crown_bounds(graph, i, inputs, trace, opts, box, neurons)
                if bounds is not None:
                    # replacing, only the neurons the consumers need change (auto_LiRPA's
                    # choice): CROWN can be looser than IBP on a neuron IBP calls stable
                    per_mode = {
                        m: _combine(box, *bounds, m, None if m else need) for m in lane.modes
                    }
            if known is not None and i in known:
                per_mode = {m: _intersect(b, known[i].lo, known[i].hi) for m, b in per_mode.items()}
            group = [lane]
            first, *rest = lane.modes
            for m in rest:
                if not _same(per_mode[m], per_mode[first]):
                    group.append(lane.fork(m))
            lanes.extend(group[1:])
            for ln in group:
                _store(graph, ln, i, per_mode[ln.modes[0]], keep)
    passes = {}
    for lane in lanes:
        lane.out[stop - 1] = lane.boxes[stop - 1]
        fp = Pass(lane.trace, lane.out)
        for m in lane.modes:
            passes[m] = fp
    return [passes[m] for m in modes]


def _same(a: Box, b: Box) -> bool:
    return a is b or (torch.equal(a.centre, b.centre) and torch.equal(a.radius, b.radius))


def _store(graph: BoundGraph, lane: _Lane, i: int, box: Box, keep: Iterable[int]) -> None:
    """Node i's box into the lane; boxes no later node reads are dropped."""
    lane.boxes[i] = box
    if i in keep:
        lane.out[i] = box
    for j in graph.nodes[i].inputs:
        if graph.last_use[j] == i and j != 0:
            lane.boxes.pop(j, None)


def spec_bounds(
    graph: BoundGraph,
    inputs: InputSet,
    spec: Tensor,
    trace: Trace,
    opts: BackwardOptions,
) -> Tensor:
    """Lower bounds (N, S) of ``spec . output`` by back-substitution on a traced pass."""
    return _concretize(graph, graph.output, spec, inputs, trace, opts)


def optimize_alphas(
    graph: BoundGraph,
    inputs: InputSet,
    spec: Tensor,
    trace: Trace,
    *,
    steps: int = 20,
    lr: float = 0.1,
    init: LowerSlope = LowerSlope.ADAPTIVE,
) -> tuple[Tensor, dict[int, Tensor]]:
    """Alpha-CROWN on the final spec: per spec and neuron, the lower slopes of unstable
    ReLUs are optimised by Adam (any slope in [0, 1] is sound) with the intermediate bounds
    of ``trace`` fixed; returns the elementwise best lower bounds seen and the final alphas
    (keyed by ReLU node index)."""
    relus = [i for i in graph.relus if id(graph.nodes[i].op) in trace]
    s = spec.shape[1]
    alphas: dict[int, Tensor] = {}
    for r in relus:
        pre = trace[id(graph.nodes[r].op)]
        start = (pre.hi > -pre.lo) if init is LowerSlope.ADAPTIVE else torch.zeros_like(pre.hi)
        alphas[r] = start.to(pre.hi.dtype).unsqueeze(1).expand(-1, s, *pre.hi.shape[1:]).clone()
    best = None
    trace = {k: _detached(v) for k, v in trace.items()}
    with torch.enable_grad():
        params = [a.requires_grad_() for a in alphas.values()]
        opt = torch.optim.Adam(params, lr=lr) if params else None
        for step in range(steps + 1):
            # other relaxed ops (not optimised) keep the choice ``init`` names
            opts = BackwardOptions(init, {id(graph.nodes[r].op): a for r, a in alphas.items()})
            lb = spec_bounds(graph, inputs, spec, trace, opts)
            cur = lb.detach()
            best = cur if best is None else torch.maximum(best, cur)
            if opt is None or step == steps:
                break
            opt.zero_grad()
            # gradients for the slopes only (never accumulated into the model's weights)
            grads = torch.autograd.grad(-lb.sum(), params, allow_unused=True)
            for a, g in zip(params, grads, strict=True):
                a.grad = g
            opt.step()
            with torch.no_grad():
                for a in params:
                    a.clamp_(0.0, 1.0)
    return best, {r: a.detach() for r, a in alphas.items()}


def _detached(v):
    if isinstance(v, Box):
        return Box(v.centre.detach(), v.radius.detach())
    if isinstance(v, tuple):
        return tuple(_detached(e) for e in v)
    if isinstance(v, Tensor):
        return v.detach()
    return v


@attrs.frozen
class GraphBounds:
    """``lb``/``ub``: (N, S) bounds of ``spec . output``; ``pre``: per ReLU node index, the
    box of its pre-activation (N, *shape) used to relax it (IBP: the IBP box)."""

    lb: Tensor
    ub: Tensor | None
    pre: dict[int, Box]


def _spec(graph: BoundGraph, spec: Tensor | None, out: Tensor) -> Tensor:
    n, shape = out.shape[0], out.shape[1:]
    if spec is None:
        d = out[0].numel()
        spec = torch.eye(d, dtype=out.dtype, device=out.device).reshape(d, *shape)
    if spec.dim() == out.dim():  # (S, *shape): shared by every row
        spec = spec.unsqueeze(0).expand(n, *spec.shape)
    return spec.to(out.dtype)


def bound_inputs(
    graph: BoundGraph,
    inputs: InputSet,
    method: Method | str = Method.CROWN,
    spec: Tensor | None = None,
    *,
    slope: LowerSlope = LowerSlope.ADAPTIVE,
    alphas: Mapping[int, Tensor] | None = None,
    known: Mapping[int, Box] | None = None,
    need_upper: bool = True,
    alpha_steps: int = 20,
    intersect: bool | None = None,
) -> GraphBounds:
    """:func:`bound_graph` over any :class:`InputSet` (a box, an l-inf or l2 ball)."""
    method = Method(method)
    relu_pre = {r: graph.nodes[r].inputs[0] for r in graph.relus}
    pre_known = {relu_pre[r]: b for r, b in known.items()} if known else None
    op_alphas = {id(graph.nodes[r].op): a for r, a in alphas.items()} if alphas else None
    opts = BackwardOptions(slope, op_alphas)
    keep = set(relu_pre.values())
    last = graph.nodes[-1]
    if method is Method.IBP and not pre_known and isinstance(last.op, BoundLinear):
        # elision: the final Linear is merged into the spec, never bounded on its own
        fp = forward_pass(graph, inputs, opts, stop=graph.output, crown=False, keep=keep)
        box = BoxInput(fp.boxes[graph.output - 1])
        out_like = last.op.forward(box.value.centre[:1])
        c = _spec(graph, spec, out_like.expand(box.value.centre.shape[0], *out_like.shape[1:]))
        both = torch.cat([c, -c], 1) if need_upper else c
        a_in, bias = last.op.backward(both, {}, opts)
        bounds = box.concretize(a_in, bias)
        s = c.shape[1]
        ub = -bounds[:, s:] if need_upper else None
        return GraphBounds(bounds[:, :s], ub, {r: fp.boxes[p] for r, p in relu_pre.items()})
    crown = method in (Method.CROWN, Method.ALPHA_CROWN)
    modes = (True, False) if intersect is None and crown else (bool(intersect) or not crown,)
    passes = forward_passes(graph, inputs, opts, modes, crown=crown, keep=keep, known=pre_known)
    result: GraphBounds | None = None
    done: list[Pass] = []
    for fp in passes:
        if any(fp is d for d in done):  # the modes never differed: the same bounds
            continue
        done.append(fp)
        out = fp.boxes[graph.output]
        c = _spec(graph, spec, out.centre)
        pre = {r: fp.boxes[p] for r, p in relu_pre.items()}
        if method is Method.IBP:
            zero = c.new_zeros(c.shape[:2])
            ub = -BoxInput(out).concretize(-c, zero) if need_upper else None
            return GraphBounds(BoxInput(out).concretize(c, zero), ub, pre)
        both = torch.cat([c, -c], 1) if need_upper else c
        if method is Method.ALPHA_CROWN and alphas is None:
            bounds, _ = optimize_alphas(graph, inputs, both, fp.trace, steps=alpha_steps)
        else:
            bounds = spec_bounds(graph, inputs, both, fp.trace, opts)
        s = c.shape[1]
        cur = GraphBounds(bounds[:, :s], -bounds[:, s:] if need_upper else None, pre)
        result = cur if result is None else _tighter(result, cur)
    return result


def _tighter(a: GraphBounds, b: GraphBounds) -> GraphBounds:
    """Both are sound: keep the better bound per entry (``a``'s pre-activation boxes)."""
    ub = None if a.ub is None else torch.minimum(a.ub, b.ub)
    return GraphBounds(torch.maximum(a.lb, b.lb), ub, a.pre)


def bound_graph(
    graph: BoundGraph,
    lower: Tensor,
    upper: Tensor,
    method: Method | str = Method.CROWN,
    spec: Tensor | None = None,
    **kw,
) -> GraphBounds:
    """Bounds of ``spec . output`` for every input in the box ``[lower, upper]`` (N, *in).

    ``method``: ``ibp``, ``crown_ibp``, ``crown`` or ``alpha_crown``; keywords as
    :func:`bound_inputs` (``slope``, ``alphas``, ``known``, ``need_upper``, ``alpha_steps``,
    ``intersect``: intermediate CROWN boxes intersected with IBP's (True), replacing them as
    auto_LiRPA does (False), or both passes and the better bound per entry (None, default:
    never looser than either, about twice the time; adaptive-slope CROWN is not monotone in
    its intermediate bounds, so neither pass dominates).
    Raises UnsupportedOp when an op's bound rule refuses the shapes it meets."""
    return bound_inputs(graph, BoxInput(Box.from_bounds(lower, upper)), method, spec, **kw)
