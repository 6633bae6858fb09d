"""ONNX operators that move or select elements (reshapes, slices, gathers, concatenation,
padding, tiling, nearest-neighbour resizing) as torch steps with static sizes.

Shape-like inputs (a Reshape's shape, a Slice's starts, Gather's indices, ...) must be
constants once folded; one computed from the input's values is refused, since the network
would then have no static shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .onnx_convert import Const, Dyn, GraphConverter, OnnxNode, Value, normalise_axis
from .onnx_layers import Concat, Expand, IndexSelect, Pad, Permute, Slice, Tile


# --- reshapes --------------------------------------------------------------------------------
def _as_data(ctx: GraphConverter, node: OnnxNode) -> Dyn:
    return ctx.data(ctx.need(node, 0))


def reshape(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    if node.opset < 5:
        target = node.ints("shape", [])
    else:
        target = ctx.ints(node, 1, "shape")
    allow_zero = bool(node.attr("allowzero", 0))
    dims = [
        x.shape[i] if d == 0 and not allow_zero and i < len(x.shape) else d
        for i, d in enumerate(target)
    ]
    n = math.prod(x.shape)
    if dims.count(-1) > 1 or any(d < -1 for d in dims):
        raise node.error(f"has an invalid target shape {target}")
    if -1 in dims:
        known = math.prod(d for d in dims if d != -1)
        if known == 0 or n % known:
            raise node.error(f"cannot reshape {list(x.shape)} to {target}")
        dims[dims.index(-1)] = n // known
    if math.prod(dims) != n:
        raise node.error(f"cannot reshape {list(x.shape)} to {target}")
    return ctx.reshape(node, x, dims)


def flatten(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    rank = len(x.shape)
    axis = int(node.attr("axis", 1))
    if not -rank <= axis <= rank:
        raise node.error(f"has axis {axis}, outside a tensor of rank {rank}")
    axis = axis + rank if axis < 0 else axis
    return ctx.reshape(node, x, (math.prod(x.shape[:axis]), math.prod(x.shape[axis:])))


def _axes(ctx: GraphConverter, node: OnnxNode) -> list[int] | None:
    return ctx.ints(node, 1, "axes") if node.opset >= 13 else node.ints("axes")


def squeeze(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    rank = len(x.shape)
    axes = _axes(ctx, node)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = {normalise_axis(node, a, rank) for a in axes}
    if any(x.shape[a] != 1 for a in axes):
        raise node.error(f"squeezes an axis that is not of size 1 in shape {list(x.shape)}")
    return ctx.reshape(node, x, [d for i, d in enumerate(x.shape) if i not in axes])


def unsqueeze(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    axes = _axes(ctx, node) or []
    rank = len(x.shape) + len(axes)
    axes = {normalise_axis(node, a, rank) for a in axes}
    dims, rest = [], iter(x.shape)
    for i in range(rank):
        dims.append(1 if i in axes else next(rest))
    return ctx.reshape(node, x, dims)


def transpose(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    rank = len(x.shape)
    perm = node.ints("perm") or list(reversed(range(rank)))
    if sorted(perm) != list(range(rank)):
        raise node.error(f"has perm {perm}, not a permutation of {rank} axes")
    return permute(ctx, node, x, perm)


def permute(ctx: GraphConverter, node: OnnxNode, x: Dyn, perm: Sequence[int]) -> Dyn:
    if list(perm) == list(range(len(perm))):
        return x
    if x.batch_first and perm[0] == 0:
        return ctx.emit(node, Permute((0, *perm[1:])), [x], True)
    x = ctx.prepended(node, x)
    return ctx.emit(node, Permute((0, *(p + 1 for p in perm))), [x], False)


# --- concatenation and selection ---------------------------------------------------------------
def concat(ctx: GraphConverter, node: OnnxNode) -> Value:
    values = [ctx.need(node, i) for i in range(len(node.inputs)) if node.inputs[i]]
    rank = len(values[0].shape)
    axis = normalise_axis(node, int(node.attr("axis", 0)), rank)
    for v in values:
        same = len(v.shape) == rank and all(
            a == b
            for i, (a, b) in enumerate(zip(v.shape, values[0].shape, strict=False))
            if i != axis
        )
        if not same:
            raise node.error(f"joins shapes {[list(v.shape) for v in values]} along axis {axis}")
    dyns = [v for v in values if isinstance(v, Dyn)]
    if not dyns:
        return ctx.fold(node, lambda *ts: torch.cat(ts, axis), *(v.tensor for v in values))
    real = next((d.dtype for d in dyns if d.dtype.is_floating_point), None)
    batch_first = axis != 0 and values[0].shape[0] == 1 and all(d.batch_first for d in dyns)
    inputs: list[Dyn] = []
    slots: list[int | Tensor] = []
    for v in values:
        if isinstance(v, Const):
            c = v.tensor.to(real) if real is not None and v.tensor.is_floating_point() else v.tensor
            slots.append(c if batch_first else c.unsqueeze(0))
        else:
            slots.append(len(inputs))
            inputs.append(v if batch_first else ctx.prepended(node, v))
    dim = axis if batch_first else axis + 1
    return ctx.emit(node, Concat(dim, slots), inputs, batch_first)


def _onnx_range(start: int, end: int, step: int, dim: int) -> range:
    """The indices ONNX Slice selects on an axis of size ``dim`` (its clamping rules)."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        return range(min(max(start, 0), dim), min(max(end, 0), dim), step)
    return range(min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step)


def take(ctx: GraphConverter, node: OnnxNode, x: Dyn, ranges: dict[int, range]) -> Dyn:
    """``x`` restricted to ``ranges`` (ONNX axis → indices): slices for positive steps,
    index selection for negative ones."""
    for a, r in ranges.items():
        if len(r) == 0:
            raise node.error(f"selects nothing on axis {a} of shape {list(x.shape)}")
    ranges = {a: r for a, r in ranges.items() if r != range(x.shape[a])}
    if x.batch_first and 0 in ranges:
        x = ctx.prepended(node, x)
    forward = {a: r for a, r in ranges.items() if r.step > 0}
    if forward:
        index = [slice(None)] * (len(x.torch_shape) + 1)
        for a, r in forward.items():
            index[x.axis(a)] = slice(r.start, r.stop, r.step)
        x = ctx.emit(node, Slice(index), [x], x.batch_first)
    for a, r in ranges.items():
        if r.step < 0:
            x = ctx.emit(node, IndexSelect(x.axis(a), torch.tensor(list(r))), [x], x.batch_first)
    return x


def slice_op(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    rank = len(x.shape)
    if node.opset < 10:
        starts, ends, axes, steps = (
            node.ints("starts"),
            node.ints("ends"),
            node.ints("axes"),
            None,
        )
    else:
        starts, ends = ctx.ints(node, 1, "starts"), ctx.ints(node, 2, "ends")
        axes, steps = ctx.ints(node, 3, "axes"), ctx.ints(node, 4, "steps")
    if starts is None or ends is None or len(starts) != len(ends):
        raise node.error("needs starts and ends of equal length")
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    if len(axes) != len(starts) or len(steps) != len(starts) or 0 in steps:
        raise node.error("has axes or steps that do not match its starts, or a step of 0")
    ranges = {}
    for a, s, e, st in zip(axes, starts, ends, steps, strict=True):
        a = normalise_axis(node, a, rank)
        ranges[a] = _onnx_range(s, e, st, x.shape[a])
    return take(ctx, node, x, ranges)


def split(ctx: GraphConverter, node: OnnxNode) -> list[Value]:
    x = _as_data(ctx, node)
    axis = normalise_axis(node, int(node.attr("axis", 0)), len(x.shape))
    dim, n = x.shape[axis], len(node.outputs)
    sizes = node.ints("split") if node.opset < 13 else ctx.ints(node, 1, "split sizes")
    if not sizes:
        parts = int(node.attr("num_outputs", n))
        chunk = -(-dim // parts)
        if node.has("num_outputs"):
            sizes = [min(chunk, dim - k * chunk) for k in range(parts)]
        elif dim % parts:
            raise node.error(f"cannot split {dim} into {parts} equal parts")
        else:
            sizes = [dim // parts] * parts
    if sum(sizes) != dim or any(s < 0 for s in sizes):
        raise node.error(f"splits an axis of {dim} into {sizes}")
    outs, start = [], 0
    for s in sizes:
        outs.append(take(ctx, node, x, {axis: range(start, start + s)}))
        start += s
    return outs


def gather(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    idx = ctx.const(node, 1, "indices")
    rank = len(x.shape)
    axis = normalise_axis(node, int(node.attr("axis", 0)), rank)
    dim = x.shape[axis]
    idx = idx.to(torch.int64)
    idx = torch.where(idx < 0, idx + dim, idx)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= dim):
        raise node.error(f"has an index outside an axis of size {dim}")
    if idx.numel() == 0:
        raise node.error("gathers nothing")
    out = (*x.shape[:axis], *idx.shape, *x.shape[axis + 1 :])
    flat = idx.reshape(-1).tolist()
    step = flat[1] - flat[0] if len(flat) > 1 else 1
    if step >= 1 and all(b - a == step for a, b in zip(flat, flat[1:], strict=False)):
        # evenly spaced indices (x[..., -1], every other row): a slice, which engines bound
        part = take(ctx, node, x, {axis: range(flat[0], flat[-1] + 1, step)})
        return ctx.reshape(node, part, out)
    if x.batch_first and axis == 0:
        x = ctx.prepended(node, x)
    batch_first = x.batch_first and len(out) >= 2 and out[0] == 1
    per = out[1:] if batch_first else out
    if x.batch_first and not batch_first:
        x = ctx.prepended(node, x)
    return ctx.emit(node, IndexSelect(x.axis(axis), idx.reshape(-1), per), [x], batch_first)


# --- broadcasting, tiling, padding -----------------------------------------------------------
def expand(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    target = ctx.ints(node, 1, "shape")
    try:
        out = tuple(torch.broadcast_shapes(x.shape, tuple(target)))
    except RuntimeError:
        raise node.error(f"cannot expand {list(x.shape)} to {target}") from None
    ctx.check_size(node, out, count=False)
    if x.batch_first and len(x.shape) == len(out) and out[0] == 1:
        return ctx.emit(node, Expand(out[1:]), [x], True)
    x = ctx.pad_rank(node, x, len(out))
    return ctx.emit(node, Expand(out), [x], False)


def tile(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    repeats = ctx.ints(node, 1, "repeats")
    if repeats is None or len(repeats) != len(x.shape) or any(r < 1 for r in repeats):
        raise node.error(f"has repeats {repeats} for a tensor of rank {len(x.shape)}")
    ctx.check_size(node, [d * r for d, r in zip(x.shape, repeats, strict=True)], count=False)
    if x.batch_first and repeats[0] == 1:
        return ctx.emit(node, Tile(repeats[1:]), [x], True)
    x = ctx.prepended(node, x)
    return ctx.emit(node, Tile(repeats), [x], False)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def pad(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    rank = len(x.shape)
    mode = node.attr("mode", "constant")
    if mode not in _PAD_MODES:
        raise node.error(f"has mode {mode!r}")
    if node.opset < 11:
        pads, value, axes = (
            node.ints("pads") or node.ints("paddings"),
            node.attr("value", 0.0),
            None,
        )
    else:
        pads = ctx.ints(node, 1, "pads")
        v = ctx.const(node, 2, "padding value")
        value = 0.0 if v is None or v.numel() == 0 else v.reshape(-1)[0].item()
        axes = ctx.ints(node, 3, "axes")
    axes = list(range(rank)) if axes is None else [normalise_axis(node, a, rank) for a in axes]
    if pads is None or len(pads) != 2 * len(axes):
        raise node.error(f"has {pads} pads for {len(axes)} axes")
    before = dict(zip(axes, pads[: len(axes)], strict=True))
    after = dict(zip(axes, pads[len(axes) :], strict=True))
    padded = [a for a in axes if before[a] or after[a]]
    if not padded:
        return x
    out = [d + before.get(a, 0) + after.get(a, 0) for a, d in enumerate(x.shape)]
    ctx.check_size(node, out, count=False)
    if x.batch_first and 0 in padded:
        x = ctx.prepended(node, x)
    first = min(x.axis(a) for a in padded)
    torch_rank = len(x.torch_shape) + 1
    onnx_of = {x.axis(a): a for a in range(rank) if not (x.batch_first and a == 0)}
    spec: list[int] = []
    for t in range(torch_rank - 1, first - 1, -1):
        a = onnx_of[t]
        spec += [before.get(a, 0), after.get(a, 0)]
    k = torch_rank - first
    if mode != "constant" and not (k <= 3 and torch_rank in (k + 1, k + 2)):
        raise node.error(f"pads {k} axes of a rank-{rank} tensor in mode {mode!r}")
    fill = float(value) if x.dtype.is_floating_point else value
    return ctx.emit(node, Pad(spec, _PAD_MODES[mode], fill), [x], x.batch_first)


# --- nearest-neighbour resizing ---------------------------------------------------------------
def _source_index(mode: str, rounding: str, out: int, dim: int, scale: float) -> np.ndarray:
    """For each output position along an axis, the input position nearest-neighbour resizing
    reads (ONNX Resize's coordinate transformation, then its rounding)."""
    j = np.arange(out, dtype=np.float64)
    if mode == "half_pixel":
        x = (j + 0.5) / scale - 0.5
    elif mode == "half_pixel_symmetric":
        adjustment = out / (scale * dim)
        x = dim / 2 * (1 - adjustment) + (j + 0.5) / scale - 0.5
    elif mode == "pytorch_half_pixel":
        x = (j + 0.5) / scale - 0.5 if out > 1 else np.zeros_like(j)
    elif mode == "align_corners":
        x = j * (dim - 1) / (out - 1) if out > 1 else np.zeros_like(j)
    elif mode == "asymmetric":
        x = j / scale
    elif mode == "tf_half_pixel_for_nn":
        x = (j + 0.5) / scale
    else:
        raise ValueError(mode)
    if rounding == "round_prefer_floor":
        i = np.ceil(x - 0.5)
    elif rounding == "round_prefer_ceil":
        i = np.floor(x + 0.5)
    elif rounding == "floor":
        i = np.floor(x)
    elif rounding == "ceil":
        i = np.ceil(x)
    else:
        raise ValueError(rounding)
    return np.clip(i, 0, dim - 1).astype(np.int64)


def _bilinear(ctx: GraphConverter, node: OnnxNode, x: Dyn, full: dict, mode: str) -> Dyn:
    """Linear resizing of the two spatial axes of an image, as torch's bilinear upsampling
    (half-pixel centres, or corners aligned); other forms are refused."""
    resized = [a for a, (_, out) in full.items() if out != x.shape[a]]
    if len(x.shape) != 4 or any(a < 2 for a in resized) or x.shape[0] != 1:
        raise node.error("resizes linearly other than over the two spatial axes of an image")
    if mode not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
        raise node.error(
            f"resizes linearly with coordinates {mode!r}, which threatlang does not convert"
        )
    if node.attr("antialias", 0):
        raise node.error("resizes with antialiasing, which threatlang does not convert")
    size = (full[2][1], full[3][1])
    layer = nn.Upsample(size=size, mode="bilinear", align_corners=mode == "align_corners")
    return ctx.emit(node, layer, [ctx.batch_first(node, x)], True)


def resize(ctx: GraphConverter, node: OnnxNode) -> Value:
    x = _as_data(ctx, node)
    rank = len(x.shape)
    kind = node.attr("mode", "nearest")
    if kind not in ("nearest", "linear", "bilinear"):
        raise node.error(
            f"resizes in mode {kind!r}; threatlang converts nearest and (bi)linear resizing"
        )
    if node.op == "Upsample":
        scales = node.attr("scales") if node.opset < 9 else ctx.const(node, 1, "scales")
        sizes, mode, rounding = None, "asymmetric", "floor"
    elif node.opset < 11:
        scales, sizes, mode, rounding = ctx.const(node, 1, "scales"), None, "asymmetric", "floor"
    else:
        scales, sizes = ctx.const(node, 2, "scales"), ctx.ints(node, 3, "sizes")
        mode = node.attr("coordinate_transformation_mode", "half_pixel")
        rounding = node.attr("nearest_mode", "round_prefer_floor")
        if node.attr("keep_aspect_ratio_policy", "stretch") != "stretch":
            raise node.error("keeps the aspect ratio, which threatlang does not convert")
    if mode == "tf_crop_and_resize":
        raise node.error("crops (tf_crop_and_resize), which threatlang does not convert")
    axes = node.ints("axes") or list(range(rank))
    axes = [normalise_axis(node, a, rank) for a in axes]
    scales = None if scales is None or len(scales) == 0 else [float(s) for s in scales]
    full = {a: (1.0, x.shape[a]) for a in range(rank)}
    if sizes:
        if len(sizes) != len(axes):
            raise node.error(f"has {len(sizes)} sizes for {len(axes)} axes")
        full.update({a: (s / x.shape[a], s) for a, s in zip(axes, sizes, strict=True)})
    elif scales:
        if len(scales) != len(axes) or any(s <= 0 for s in scales):
            raise node.error(f"has scales {scales} for {len(axes)} axes")
        full.update(
            {a: (s, int(math.floor(x.shape[a] * s))) for a, s in zip(axes, scales, strict=True)}
        )
    else:
        raise node.error("gives neither scales nor sizes")
    ctx.check_size(node, [full[a][1] for a in range(rank)], count=False)
    if kind != "nearest":
        return _bilinear(ctx, node, x, full, mode)
    try:
        picks = {
            a: _source_index(mode, rounding, out, x.shape[a], s) for a, (s, out) in full.items()
        }
    except ValueError as err:
        raise node.error(f"uses the mode {err}, which threatlang does not convert") from None
    picks = {a: p for a, p in picks.items() if not np.array_equal(p, np.arange(x.shape[a]))}
    if any(len(p) == 0 for p in picks.values()):
        raise node.error("resizes an axis to nothing")
    if x.batch_first and 0 in picks:
        x = ctx.prepended(node, x)
    factors = {a: len(p) // x.shape[a] for a, p in picks.items()}
    repeats = all(
        a in (2, 3)
        and factors[a] in (2, 4, 8)
        and np.array_equal(p, np.arange(len(p)) // factors[a])
        for a, p in picks.items()
    )
    if repeats and x.batch_first and rank == 4 and picks:
        scale = (factors.get(2, 1), factors.get(3, 1))
        return ctx.emit(node, nn.Upsample(scale_factor=scale, mode="nearest"), [x], True)
    for a, p in picks.items():
        x = ctx.emit(node, IndexSelect(x.axis(a), torch.from_numpy(p)), [x], x.batch_first)
    return x


CONVERTERS = {
    "Reshape": reshape,
    "Flatten": flatten,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Transpose": transpose,
    "Concat": concat,
    "Slice": slice_op,
    "Split": split,
    "Gather": gather,
    "Expand": expand,
    "Tile": tile,
    "Pad": pad,
    "Resize": resize,
    "Upsample": resize,
}
