"""A grammar of small modules written the ways users write them, for the soundness fuzzer.

A module is an optional *first op* on the raw input, a few *blocks* on a (N, C, H, W) tensor,
a *head* (flatten + linear to at most 4 classes), an optional *end* (softmax), and an optional
*wrapper* with data-dependent control flow. The data the fuzzer certifies lie on a pixel grid
(multiples of 1/8), and the constructs that hide computation from a naive capture (a forward
hook, an in-place op through a view, data-dependent branches) add a `grid_ripple` of the raw
input: zero on the grid, so it leaves the clean predictions alone, but steep between grid
points. A bound engine that drops it bounds a different, smoother function and certifies
points that an attack a step off the grid breaks; an engine that keeps it must bound the
ripple (wide) or refuse it. Either is sound; only the first kind is a bug, and it is loud.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: every fuzz module takes (N, 1, 6, 6) inputs in [0, 1]
INPUT_SHAPE = (1, 6, 6)
#: the data's pixel grid: values k / GRID
GRID = 8
#: the ripple's gain: a step of 0.01 off the grid moves a logit by about RIPPLE * 0.5
RIPPLE = 8.0


class Place(enum.Enum):
    """Where a construct goes in a module."""

    FIRST = "first"  # the first op, on the raw input
    BLOCK = "block"  # on the (N, C, H, W) activations
    END = "end"  # after the head
    WRAPPER = "wrapper"  # around the whole forward
    MODE = "mode"  # how the module is handed to run()


@attrs.frozen
class Construct:
    """One way users write a piece of a model; `issue` names the unsound case it reproduces."""

    name: str
    place: Place
    build: Callable[..., nn.Module] | None
    issue: str = ""


# ----------------------------------------------------------------------------- helpers
def grid_ripple(x: Tensor) -> Tensor:
    """sin(2 pi GRID x): 0 at every grid point, slope 2 pi GRID between them."""
    return torch.sin((2 * math.pi * GRID) * x)


class Ripple(nn.Module):
    """RIPPLE * P sin(2 pi GRID x), mapped to `numel` features per item by a fixed matrix."""

    def __init__(self, numel: int, gen: torch.Generator) -> None:
        super().__init__()
        d = math.prod(INPUT_SHAPE)
        self.register_buffer("proj", torch.randn(numel, d, generator=gen) * RIPPLE / math.sqrt(d))

    def forward(self, x: Tensor) -> Tensor:
        return grid_ripple(x.flatten(1)) @ self.proj.T


def on_grid(x: Tensor) -> bool:
    scaled = x * GRID
    return bool((scaled - scaled.round()).abs().max() < 1e-6)


def _init(layer: nn.Module, gen: torch.Generator) -> nn.Module:
    """Weights from the fuzzer's own generator (the global RNG is left alone)."""
    with torch.no_grad():
        for p in layer.parameters():
            bound = 1.0 / math.sqrt(max(1, p[0].numel())) if p.dim() > 1 else 0.3
            p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) * bound * 1.5)
    return layer


# ---------------------------------------------------------------- blocks: (h, x) -> h
class Block(nn.Module):
    """A block sees the activations `h` and the raw input `x` (for ripples and skips)."""

    out_shape: tuple[int, int, int]


class Layer(Block):
    """A plain layer (conv, pool, activation, ...) applied to h."""

    def __init__(self, layer: nn.Module, out_shape) -> None:
        super().__init__()
        self.layer, self.out_shape = layer, out_shape

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        return self.layer(h)


class Fn(Block):
    """A function of h written in forward (torch.* / F.* / Tensor methods)."""

    def __init__(self, fn: Callable[[Tensor], Tensor], out_shape, name: str) -> None:
        super().__init__()
        self.fn, self.out_shape, self.name = fn, out_shape, name

    def forward(self, h: Tensor, x: Tensor) -> Tensor:
        return self.fn(h)

    def extra_repr(self) -> str:
        return self.name


def _conv_out(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def conv(shape, gen, *, out=3, k=3, stride=1, padding=1, dilation=1) -> Block:
    c, h, w = shape
    layer = _init(nn.Conv2d(c, out, k, stride, padding, dilation), gen)
    size = (
        out,
        _conv_out(h, k, stride, padding, dilation),
        _conv_out(w, k, stride, padding, dilation),
    )
    return Layer(layer, size)


class GroupedConv(Block):
    """A conv with groups=2 (a 1x1 conv first makes the channels even when they are odd)."""

    def __init__(self, shape, gen) -> None:
        super().__init__()
        c, h, w = shape
        self.widen = _init(nn.Conv2d(c, 2, 1), gen) if c % 2 else nn.Identity()
        self.conv = _init(nn.Conv2d(2 if c % 2 else c, 4, 3, padding=1, groups=2), gen)
        self.out_shape = (4, h, w)

    def forward(self, h, x):
        return self.conv(self.widen(h))


class Skip(Block):
    """h + conv(relu(conv(h))) (a residual block written in forward)."""

    def __init__(self, shape, gen) -> None:
        super().__init__()
        c = shape[0]
        self.a = _init(nn.Conv2d(c, c, 3, padding=1), gen)
        self.b = _init(nn.Conv2d(c, c, 3, padding=1), gen)
        self.out_shape = shape

    def forward(self, h, x):
        return h + self.b(F.relu(self.a(h)))


class Concat(Block):
    """torch.cat of two branches on the channel axis."""

    def __init__(self, shape, gen) -> None:
        super().__init__()
        c, hh, ww = shape
        self.a = _init(nn.Conv2d(c, 2, 3, padding=1), gen)
        self.b = _init(nn.Conv2d(c, 1, 1), gen)
        self.out_shape = (3, hh, ww)

    def forward(self, h, x):
        return torch.cat([self.a(h), 0.5 * self.b(h) - 0.1], dim=1)


class Reused(Block):
    """The same conv applied twice (weights shared)."""

    def __init__(self, shape, gen) -> None:
        super().__init__()
        c = shape[0]
        self.conv = _init(nn.Conv2d(c, c, 3, padding=1), gen)
        self.out_shape = shape

    def forward(self, h, x):
        return self.conv(F.relu(self.conv(h)))


class ParamScale(Block):
    """h times a learned per-channel scale (a parameter used in forward)."""

    def __init__(self, shape, gen) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.rand(1, shape[0], 1, 1, generator=gen) * 3 - 1.5)
        self.out_shape = shape

    def forward(self, h, x):
        return h * self.scale


class LinearLastDim(Block):
    """nn.Linear over the last dim of the 4-D activations (W -> W)."""

    def __init__(self, shape, gen) -> None:
        super().__init__()
        self.linear = _init(nn.Linear(shape[2], shape[2]), gen)
        self.out_shape = shape

    def forward(self, h, x):
        return self.linear(h)


class InplaceOnView(Block):
    """Issue 19 case 1: conv, then `y.view(n, -1).add_(other)` on the intermediate."""

    def __init__(self, shape, gen) -> None:
        super().__init__()
        self.conv = _init(nn.Conv2d(shape[0], 2, 3, padding=1), gen)
        self.out_shape = (2, shape[1], shape[2])
        self.ripple = Ripple(math.prod(self.out_shape), gen)

    def forward(self, h, x):
        y = self.conv(h)
        y.view(y.shape[0], -1).add_(self.ripple(x))
        return y


class ScaledReLU(torch.autograd.Function):
    """A custom autograd Function: 2 relu(h), with a straight-through backward."""

    @staticmethod
    def forward(ctx, h):
        return 2 * h.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        return 2 * grad


class Custom(Block):
    def __init__(self, shape) -> None:
        super().__init__()
        self.out_shape = shape

    def forward(self, h, x):
        return ScaledReLU.apply(h)


class FunctionalDropout(Block):
    """Issue 19 case 3: `F.dropout(h, 0.5)`, whose default is training=True: always on."""

    def __init__(self, shape) -> None:
        super().__init__()
        self.out_shape = shape

    def forward(self, h, x):
        return F.dropout(h, 0.5)


class MCDropout(nn.Dropout):
    """Issue 19 case 3: Monte Carlo dropout, on in eval() too (`train()` overridden)."""

    def train(self, mode: bool = True):
        return super().train(True)


def _batchnorm(shape, gen) -> Block:
    bn = nn.BatchNorm2d(shape[0])
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(shape[0], generator=gen) * 0.3)
        bn.running_var.copy_(torch.rand(shape[0], generator=gen) * 1.5 + 0.5)
        bn.weight.copy_(torch.rand(shape[0], generator=gen) + 0.5)
        bn.bias.copy_(torch.randn(shape[0], generator=gen) * 0.2)
    return Layer(bn, shape)


def _pool(shape, layer, k: int, s: int, p: int) -> Block:
    c, h, w = shape
    return Layer(layer, (c, _conv_out(h, k, s, p, 1), _conv_out(w, k, s, p, 1)))


def _fn(fn, name):
    return lambda shape, gen: Fn(fn, shape, name)


# ------------------------------------------------------------------------ first ops
class FirstOp(nn.Module):
    """An elementwise first op on the raw input (issue 19 case 5 under l2 balls)."""

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str) -> None:
        super().__init__()
        self.fn, self.name = fn, name

    def forward(self, x):
        return self.fn(x)

    def extra_repr(self) -> str:
        return self.name


class Normalise(nn.Module):
    """(x - mean) / std with buffers."""

    def __init__(self, gen) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([[[0.45]]]))
        self.register_buffer("std", torch.tensor([[[0.3]]]))

    def forward(self, x):
        return (x - self.mean) / self.std


class HookedLinear(nn.Module):
    """Issue 19 case 2: an nn.Linear over the input's last dim with a forward hook that adds
    a grid ripple of the layer's input (the hooked module's output differs from the bare
    weights' exactly off the grid)."""

    def __init__(self, gen) -> None:
        super().__init__()
        self.linear = _init(nn.Linear(INPUT_SHAPE[2], INPUT_SHAPE[2]), gen)
        self.linear.register_forward_hook(_ripple_hook)

    def forward(self, x):
        return self.linear(x)


def _ripple_hook(module, inputs, output):
    return output + RIPPLE * grid_ripple(inputs[0])


# ------------------------------------------------------------------ wrappers and end
class BlankFixed(nn.Module):
    """Issue 19 case 4: fixed logits for a blank input, else the network plus a ripple."""

    def __init__(self, classes: int, gen) -> None:
        super().__init__()
        self.register_buffer("fixed", torch.arange(classes, dtype=torch.float32) * 3.0)
        self.ripple = Ripple(classes, gen)

    def wrap(self, net, x):
        if float(x.abs().sum()) == 0.0:
            return self.fixed.expand(x.shape[0], -1)
        return net(x) + self.ripple(x)


class NegateOffGrid(nn.Module):
    """Issue 19 case 4: the logits, negated when the input leaves the pixel grid."""

    def wrap(self, net, x):
        out = net(x)
        return out if on_grid(x) else -out


def _first(fn, name):
    return lambda gen: FirstOp(fn, name)


CONSTRUCTS: tuple[Construct, ...] = (
    # the six unsound cases of issue 19
    Construct("inplace_view_add", Place.BLOCK, lambda s, g: InplaceOnView(s, g), "case 1"),
    Construct("forward_hook_linear", Place.FIRST, HookedLinear, "case 2"),
    Construct("functional_dropout", Place.BLOCK, lambda s, g: FunctionalDropout(s), "case 3"),
    Construct("mc_dropout", Place.BLOCK, lambda s, g: Layer(MCDropout(0.5), s), "case 3"),
    Construct("blank_fixed_logits", Place.WRAPPER, None, "case 4"),
    Construct("negate_off_grid", Place.WRAPPER, None, "case 4"),
    Construct("first_sub_half", Place.FIRST, _first(lambda x: x - 0.5, "x - 0.5"), "case 5"),
    Construct("first_one_minus", Place.FIRST, _first(lambda x: 1 - x, "1 - x"), "case 5"),
    Construct("first_normalise", Place.FIRST, Normalise, "case 5"),
    Construct(
        "avgpool_exclude_pad",
        Place.BLOCK,
        lambda s, g: _pool(s, nn.AvgPool2d(3, 1, 1, count_include_pad=False), 3, 1, 1),
        "case 6",
    ),
    # what users' models use
    Construct(
        "avgpool_include_pad",
        Place.BLOCK,
        lambda s, g: _pool(s, nn.AvgPool2d(3, 1, 1, count_include_pad=True), 3, 1, 1),
    ),
    Construct("maxpool", Place.BLOCK, lambda s, g: _pool(s, nn.MaxPool2d(2), 2, 2, 0)),
    Construct("skip", Place.BLOCK, Skip),
    Construct("concat", Place.BLOCK, Concat),
    Construct("negative_scale", Place.BLOCK, _fn(lambda h: -1.5 * h, "-1.5 * h")),
    Construct("parameter_scale", Place.BLOCK, ParamScale),
    Construct("conv_grouped", Place.BLOCK, GroupedConv),
    Construct("conv_strided", Place.BLOCK, lambda s, g: conv(s, g, stride=2)),
    Construct("conv_dilated", Place.BLOCK, lambda s, g: conv(s, g, padding=2, dilation=2)),
    Construct("conv_padded", Place.BLOCK, lambda s, g: conv(s, g, k=3, padding=1)),
    Construct("linear_last_dim", Place.BLOCK, LinearLastDim),
    Construct("batchnorm", Place.BLOCK, _batchnorm),
    Construct("dropout_module", Place.BLOCK, lambda s, g: Layer(nn.Dropout(0.5), s)),
    Construct("reused_layer", Place.BLOCK, Reused),
    Construct("relu", Place.BLOCK, lambda s, g: Layer(nn.ReLU(), s)),
    Construct("clamp", Place.BLOCK, _fn(lambda h: h.clamp(-1.0, 1.0), "clamp(-1, 1)")),
    Construct("abs", Place.BLOCK, _fn(torch.abs, "abs")),
    Construct("leaky_relu", Place.BLOCK, lambda s, g: Layer(nn.LeakyReLU(0.1), s)),
    Construct("tanh", Place.BLOCK, _fn(torch.tanh, "tanh")),
    Construct("sigmoid", Place.BLOCK, lambda s, g: Layer(nn.Sigmoid(), s)),
    Construct("custom_autograd_function", Place.BLOCK, lambda s, g: Custom(s)),
    Construct("softmax_end", Place.END, None),
    Construct("handed_in_train_mode", Place.MODE, None),
)
BY_NAME = {c.name: c for c in CONSTRUCTS}
FIRST = tuple(c.name for c in CONSTRUCTS if c.place is Place.FIRST)
BLOCKS = tuple(c.name for c in CONSTRUCTS if c.place is Place.BLOCK)
WRAPPERS = tuple(c.name for c in CONSTRUCTS if c.place is Place.WRAPPER)
#: constructs that shrink the image: at most one per module keeps it at least 3x3
SHRINKING = frozenset({"maxpool", "conv_strided"})


# ---------------------------------------------------------------------------- modules
@attrs.frozen
class Blueprint:
    """What the fuzzer draws: the constructs, in order, and the module's own seed."""

    first: str | None
    blocks: tuple[str, ...]
    classes: int
    wrapper: str | None = None
    softmax: bool = False
    train_mode: bool = False
    seed: int = 0

    @property
    def constructs(self) -> list[str]:
        """Every construct of the module (what a failure prints)."""
        out = [self.first] if self.first else []
        out += list(self.blocks)
        out += ["softmax_end"] if self.softmax else []
        out += [self.wrapper] if self.wrapper else []
        out += ["handed_in_train_mode"] if self.train_mode else []
        return out

    def describe(self) -> str:
        return (
            f"{' -> '.join(self.constructs) or 'linear'} ({self.classes} classes, seed {self.seed})"
        )


class FuzzNet(nn.Module):
    """first op -> blocks(h, x) -> flatten + linear -> softmax, inside an optional wrapper."""

    def __init__(self, bp: Blueprint) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(bp.seed)
        self.first = BY_NAME[bp.first].build(gen) if bp.first else nn.Identity()
        shape = INPUT_SHAPE
        blocks = []
        for name in bp.blocks:
            block = BY_NAME[name].build(shape, gen)
            shape = block.out_shape
            blocks.append(block)
        self.blocks = nn.ModuleList(blocks)
        self.head = _init(nn.Linear(math.prod(shape), bp.classes), gen)
        self.softmax = bp.softmax
        self.wrapper = {
            None: None,
            "blank_fixed_logits": lambda: BlankFixed(bp.classes, gen),
            "negate_off_grid": NegateOffGrid,
        }[bp.wrapper]
        self.wrapper = self.wrapper() if self.wrapper else None
        self.train(bp.train_mode)

    def net(self, x: Tensor) -> Tensor:
        h = self.first(x)
        for block in self.blocks:
            h = block(h, x)
        out = self.head(torch.flatten(h, 1))
        return torch.softmax(out, dim=1) if self.softmax else out

    def forward(self, x: Tensor) -> Tensor:
        if self.wrapper is None:
            return self.net(x)
        return self.wrapper.wrap(self.net, x)


def build(bp: Blueprint) -> FuzzNet:
    return FuzzNet(bp)


__all__ = [
    "BLOCKS",
    "BY_NAME",
    "CONSTRUCTS",
    "FIRST",
    "GRID",
    "INPUT_SHAPE",
    "SHRINKING",
    "WRAPPERS",
    "Blueprint",
    "Construct",
    "FuzzNet",
    "Place",
    "build",
    "on_grid",
]
