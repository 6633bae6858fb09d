"""Built-in architectures of §2.7.1, sized from the data's input shape.

Each builder takes ``input_shape = (C, H, W)`` and ``num_classes`` and returns a plain
``nn.Sequential`` the bound engine understands. ``width`` scales channel/neuron counts for
small experiments (8x8 digits run fine at the chapter's sizes already).
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


def small_cnn(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> nn.Sequential:
    """Two convs (kernel 4, stride 2; 4 and 8 channels) and a 256-neuron FC layer."""
    ch = [max(1, round(4 * width)), max(1, round(8 * width))]
    convs, flat = _convs(_image("small_cnn", input_shape), [(ch[0], 4, 2, 1), (ch[1], 4, 2, 1)])
    fc = max(1, round(256 * width))
    return nn.Sequential(
        *convs, nn.Flatten(), nn.Linear(flat, fc), nn.ReLU(), nn.Linear(fc, num_classes)
    )


def large_cnn(
    input_shape: tuple[int, int, int], num_classes: int, width: float = 1.0
) -> nn.Sequential:
    """Four convs, kernels (3, 4, 3, 4), strides (1, 2, 1, 2), channels (4, 4, 8, 8); two FC 256."""
    ch = [max(1, round(v * width)) for v in (4, 4, 8, 8)]
    spec = [(ch[0], 3, 1, 1), (ch[1], 4, 2, 1), (ch[2], 3, 1, 1), (ch[3], 4, 2, 1)]
    convs, flat = _convs(_image("large_cnn", input_shape), spec)
    fc = max(1, round(256 * width))
    return nn.Sequential(
        *convs,
        nn.Flatten(),
        nn.Linear(flat, fc),
        nn.ReLU(),
        nn.Linear(fc, fc),
        nn.ReLU(),
        nn.Linear(fc, num_classes),
    )


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
    "five_layer_wide": five_layer_wide,
}
