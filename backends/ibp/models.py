"""Built-in architectures of §2.7.1, sized from the data's input shape.

Each builder takes ``input_shape = (C, H, W)`` and ``num_classes`` and returns a plain
``nn.Sequential`` the bound engine understands. ``width`` scales channel/neuron counts for
small experiments.

The chapter's CNN shapes were made for 28x28 (and 32x32) images. On images under
``SMALL_IMAGE`` pixels a side (the 8x8 digits) its small CNN's two stride-2 convolutions of 4
and 8 channels leave a 2x2x8 map, and certificate training of that shape stalls near chance
(BENCHMARKS.md, ibp chapter 2, issue 22): there ``small_cnn`` starts with a stride-1 conv, uses
16 / 32 channels and keeps a 4x4x32 map. ``chapter_small_cnn`` / ``chapter_large_cnn`` are the
chapter's shapes at every input size.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from threatlang.errors import UsageError


def _image(name: str, input_shape) -> tuple[int, int, int]:
    """`input_shape` as (C, H, W), or a `UsageError` naming what the data holds instead."""
    shape = tuple(input_shape)
    if len(shape) != 3:
        raise UsageError(
            f"architecture {name} takes (C, H, W) images, but the data's examples have shape "
            f"{shape}; give image-shaped data (N, C, H, W) or a model file for these inputs."
        )
    return shape


def _conv_out(size: int, k: int, s: int, p: int) -> int:
    return (size + 2 * p - k) // s + 1


def _convs(
    input_shape: tuple[int, int, int], spec: list[tuple[int, int, int, int]]
) -> tuple[list[nn.Module], int]:
    """(out_channels, kernel, stride, padding) per conv, each followed by ReLU."""
    c, h, w = input_shape  # checked by the builder (`_image`)
    layers: list[nn.Module] = []
    for out, k, s, p in spec:
        layers += [nn.Conv2d(c, out, k, s, p), nn.ReLU()]
        c, h, w = out, _conv_out(h, k, s, p), _conv_out(w, k, s, p)
    return layers, c * h * w


def mlp255(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> nn.Sequential:
    """MLP with one 255-neuron hidden layer."""
    c, h, w = _image("mlp255", input_shape)
    hidden = max(1, round(255 * width))
    return nn.Sequential(
        nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
    )


SMALL_IMAGE = 16
"""Images with a side under this many pixels get the small-image CNN shapes."""


def _small(shape: tuple[int, int, int]) -> bool:
    return min(shape[1:]) < SMALL_IMAGE


def _channels(values: tuple[int, ...], width: float) -> list[int]:
    return [max(1, round(v * width)) for v in values]


def _head(
    convs: list[nn.Module], flat: int, fcs: int, num_classes: int, width: float
) -> nn.Sequential:
    """Flatten, ``fcs`` ReLU layers of 256 (scaled) neurons, then the logits."""
    fc = max(1, round(256 * width))
    layers = [*convs, nn.Flatten()]
    for i in range(fcs):
        layers += [nn.Linear(flat if i == 0 else fc, fc), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(fc, num_classes))


def chapter_small_cnn(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> nn.Sequential:
    """§2.7.1's small CNN at any input size: two convs (kernel 4, stride 2; 4 and 8 channels)
    and a 256-neuron FC layer."""
    ch = _channels((4, 8), width)
    shape = _image("chapter_small_cnn", input_shape)
    convs, flat = _convs(shape, [(ch[0], 4, 2, 1), (ch[1], 4, 2, 1)])
    return _head(convs, flat, 1, num_classes, width)


def chapter_large_cnn(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> nn.Sequential:
    """§2.7.1's large CNN at any input size: four convs, kernels (3, 4, 3, 4), strides
    (1, 2, 1, 2), channels (4, 4, 8, 8); two FC 256."""
    ch = _channels((4, 4, 8, 8), width)
    spec = [(ch[0], 3, 1, 1), (ch[1], 4, 2, 1), (ch[2], 3, 1, 1), (ch[3], 4, 2, 1)]
    convs, flat = _convs(_image("chapter_large_cnn", input_shape), spec)
    return _head(convs, flat, 2, num_classes, width)


def small_cnn(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> nn.Sequential:
    """The chapter's small CNN (``chapter_small_cnn``) on images of ``SMALL_IMAGE`` pixels a
    side or more; under it convs (16, kernel 3, stride 1) and (32, kernel 4, stride 2), so an
    8x8 image leaves a 4x4x32 map, and the same FC 256."""
    shape = _image("small_cnn", input_shape)
    if not _small(shape):
        return chapter_small_cnn(shape, num_classes, width)
    ch = _channels((16, 32), width)
    convs, flat = _convs(shape, [(ch[0], 3, 1, 1), (ch[1], 4, 2, 1)])
    return _head(convs, flat, 1, num_classes, width)


def large_cnn(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> nn.Sequential:
    """The chapter's large CNN at every input size (``chapter_large_cnn``). No small-image
    shape was found that certificate training does not collapse to a constant output on 8x8
    digits (16/32 channels collapse faster; BENCHMARKS.md, issue 22): use ``small_cnn`` there."""
    return chapter_large_cnn(_image("large_cnn", input_shape), num_classes, width)


def five_layer_wide(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> nn.Sequential:
    """Five kernel-3 convs (64, 64, 128, 128, 128; the third with stride 2) and FC 512,
    the large model of Gowal et al. used in §2.7.4 (17M parameters on CIFAR-10)."""
    ch = [max(1, round(v * width)) for v in (64, 64, 128, 128, 128)]
    spec = [
        (ch[0], 3, 1, 1),
        (ch[1], 3, 1, 1),
        (ch[2], 3, 2, 1),
        (ch[3], 3, 1, 1),
        (ch[4], 3, 1, 1),
    ]
    convs, flat = _convs(_image("five_layer_wide", input_shape), spec)
    fc = max(1, round(512 * width))
    return nn.Sequential(
        *convs, nn.Flatten(), nn.Linear(flat, fc), nn.ReLU(), nn.Linear(fc, num_classes)
    )


ARCHITECTURES: dict[str, Callable[..., nn.Sequential]] = {
    "mlp255": mlp255,
    "small_cnn": small_cnn,
    "large_cnn": large_cnn,
    "chapter_small_cnn": chapter_small_cnn,
    "chapter_large_cnn": chapter_large_cnn,
    "five_layer_wide": five_layer_wide,
}
