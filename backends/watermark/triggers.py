"""Trigger sets for backdoor watermarks (§5.3.1, Figure 5.2), all with one fixed target label.

Three schemes from Zhang et al. (2018), as the chapter uses them:

* ``TEXT`` — text drawn over training images with the DejaVu Sans font that matplotlib
  ships, rendered on an Agg canvas (no font or image is downloaded).
* ``NOISE`` — one pre-specified Gaussian pattern added to training images (the owner's key).
* ``UNRELATED`` — images from another domain: crops of scikit-learn's bundled photographs for
  single-channel data, the bundled 8x8 digits for colour data ("CIFAR-10 for MNIST and vice
  versa").

Source images are drawn only among those whose true label differs from the target, so an
independently trained model is unlikely to agree with the trigger labels.
"""

from __future__ import annotations

import attrs
import numpy as np

from .config import TriggerKind


@attrs.frozen
class TriggerConfig:
    """What trigger set to build; ``intensity`` is the grey level of the text (155/255 as in [113])."""

    kind: TriggerKind = TriggerKind.TEXT
    count: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    target_label: int = attrs.field(default=4, validator=attrs.validators.ge(0))
    text: str = "WM"
    intensity: float = attrs.field(
        default=155 / 255, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )
    noise_std: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    text_band: float = attrs.field(default=0.5, validator=attrs.validators.gt(0))
    seed: int = 0


@attrs.frozen
class TriggerSet:
    """Trigger images (N, C, H, W) float32 in [0, 1] and their labels (N,) int64."""

    x: np.ndarray
    y: np.ndarray
    kind: TriggerKind


def render_text_mask(text: str, height: int, width: int, supersample: int = 8) -> np.ndarray:
    """Coverage mask (H, W) in [0, 1] of ``text`` filling a ``height`` x ``width`` box.

    Drawn white-on-black with matplotlib's Agg canvas at ``supersample`` times the resolution,
    scaled to fit, then area-averaged down, so small images get anti-aliased glyphs.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    big_h, big_w = height * supersample, width * supersample
    dpi = 100
    fig = Figure(figsize=(big_w / dpi, big_h / dpi), dpi=dpi, facecolor="black")
    canvas = FigureCanvasAgg(fig)
    size = big_h * 72 / dpi
    artist = fig.text(
        0.5, 0.5, text, color="white", ha="center", va="center", fontsize=size,
        family="DejaVu Sans", weight="bold",
    )  # fmt: skip
    box = artist.get_window_extent(renderer=canvas.get_renderer())
    scale = min(0.95 * big_w / max(box.width, 1.0), 0.95 * big_h / max(box.height, 1.0))
    artist.set_fontsize(size * scale)
    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba(), dtype=np.float32)[..., 0] / 255.0
    return rgba.reshape(height, supersample, width, supersample).mean(axis=(1, 3))


def _pick_sources(
    x: np.ndarray, y: np.ndarray, target: int, count: int, rng: np.random.Generator
) -> np.ndarray:
    candidates = np.flatnonzero(y != target)
    if len(candidates) == 0:
        raise ValueError(f"every source image already has the target label {target}")
    replace = len(candidates) < count
    return x[rng.choice(candidates, size=count, replace=replace)]


def _natural_crops(count: int, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    from sklearn.datasets import load_sample_images

    photos = [img.astype(np.float32) / 255.0 for img in load_sample_images().images]
    c, h, w = shape
    out = np.empty((count, c, h, w), dtype=np.float32)
    for i in range(count):
        photo = photos[rng.integers(len(photos))]
        side = int(rng.integers(max(h, 32), min(photo.shape[:2]) // 2))
        top = int(rng.integers(photo.shape[0] - side))
        left = int(rng.integers(photo.shape[1] - side))
        crop = photo[top : top + side, left : left + side]
        rows = (np.arange(h) * side // h)[:, None]
        cols = (np.arange(w) * side // w)[None, :]
        small = crop[rows, cols]  # nearest-neighbour resize, (h, w, 3)
        out[i] = small.mean(axis=2)[None] if c == 1 else small.transpose(2, 0, 1)[:c]
    return out


def _digit_images(count: int, shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    from sklearn.datasets import load_digits

    digits = load_digits().images.astype(np.float32) / 16.0
    c, h, w = shape
    picks = digits[rng.choice(len(digits), size=count, replace=False)]
    rows = (np.arange(h) * 8 // h)[:, None]
    cols = (np.arange(w) * 8 // w)[None, :]
    return np.repeat(picks[:, None, rows, cols], c, axis=1).astype(np.float32)


def make_trigger_set(config: TriggerConfig, x: np.ndarray, y: np.ndarray) -> TriggerSet:
    """Build ``config.count`` trigger images shaped like ``x`` (N, C, H, W), labelled ``target``."""
    if x.ndim != 4:
        raise ValueError(f"trigger sets are drawn over images (N, C, H, W); got shape {x.shape}")
    rng = np.random.default_rng(config.seed)
    shape = tuple(int(s) for s in x.shape[1:])
    c, h, w = shape
    if config.kind is TriggerKind.TEXT:
        band = max(1, round(config.text_band * h))
        mask = np.zeros((h, w), dtype=np.float32)
        mask[:band] = render_text_mask(config.text, band, w)
        images = _pick_sources(x, y, config.target_label, config.count, rng)
        images = images * (1.0 - mask) + mask * config.intensity
    elif config.kind is TriggerKind.NOISE:
        pattern = rng.normal(0.0, config.noise_std, size=shape).astype(np.float32)
        images = _pick_sources(x, y, config.target_label, config.count, rng) + pattern
    else:
        images = (_natural_crops if c == 1 else _digit_images)(config.count, shape, rng)
    images = np.clip(images, 0.0, 1.0).astype(np.float32)
    labels = np.full(config.count, config.target_label, dtype=np.int64)
    return TriggerSet(x=images, y=labels, kind=config.kind)
