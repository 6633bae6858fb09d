"""Data and models for a detection run: synthetic scenes, the builtin detector and denoiser.

Trained models are saved under the run directory and reloaded on resume (weights only).
"""

from __future__ import annotations

import numpy as np

from threatlang.errors import UsageError
from threatlang.runtime import build_model

from .detection.models import DnCNN, TinyDetector
from .detection.scenes import SceneConfig, Scenes, make_scenes
from .detection.training import train_denoiser, train_detector

__all__ = [
    "build_denoiser",
    "build_detector",
    "load_scenes",
    "model_from_spec",
    "scenes_from_pairs",
]


def scenes_from_pairs(pairs) -> Scenes:
    """Test data in torchvision's style: ``(image (3, H, W) in [0, 1], {"boxes", "labels"})``."""
    images, boxes, labels = [], [], []
    for image, target in pairs:
        images.append(np.asarray(image, dtype=np.float32))
        boxes.append(np.asarray(target["boxes"], dtype=np.float32).reshape(-1, 4))
        labels.append(np.asarray(target["labels"], dtype=np.int64).reshape(-1))
    return Scenes(np.stack(images), tuple(boxes), tuple(labels))


def load_scenes(plan, ctx) -> tuple[Scenes, Scenes]:
    """The API's data — :class:`Scenes`, a ``(train, test)`` pair of them, or a list of
    torchvision-style ``(image, target)`` pairs (test only) — else generated scenes (a
    generated source: `ctx.splits` serves the core's image datasets, not scenes)."""
    if ctx.data is not None:
        data = ctx.data
        if isinstance(data, Scenes):
            return data, data
        if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], Scenes):
            return data
        test = scenes_from_pairs(data)
        return test, test
    opts = plan.data_options
    cfg = SceneConfig(size=opts.size, max_objects=opts.max_objects)
    train = make_scenes(opts.train_count, seed=2 * ctx.seed, cfg=cfg)
    test = make_scenes(plan.test_count, seed=2 * ctx.seed + 1, cfg=cfg)
    return train, test


def model_from_spec(ctx, ref, input_shape, num_classes):
    """A model the spec names by file or code (not a builtin to train), else None."""
    from threatlang.ir import ModelKind
    from threatlang.models_io import load_model

    if ref is None or ref.kind is ModelKind.BUILTIN:
        return None
    return load_model(
        ref, input_shape, num_classes, allow_code=ctx.allow_code, device=str(ctx.device)
    )


def build_detector(plan, ctx, train: Scenes, num_classes: int):
    """The API's model, else the spec's model file/code, else the builtin detector, trained
    (a checkpoint: a resumed run loads it and keeps the first run's train seconds)."""
    if ctx.model is not None:
        return ctx.model
    loaded = model_from_spec(ctx, plan.spec.model, tuple(train.images.shape[1:]), num_classes)
    if loaded is not None:
        return loaded
    if plan.training is None:  # `validate` refuses this spec before it runs
        raise UsageError(f"spec '{plan.spec.name}' has a builtin detector and no `train`.")
    model = ctx.build_model("detector", lambda: TinyDetector(num_classes=num_classes))
    ctx.checkpoint(
        "detector.pt",
        model,
        lambda: train_detector(model, train, plan.training, ctx.generator("train-detector")),
    )
    return model.eval()


def build_denoiser(plan, ctx, train: Scenes):
    """The builtin DnCNN for the encoding's `denoiser "dncnn"`, trained at the smoothing sigma."""
    if plan.denoiser is None:
        return None
    if plan.denoiser != "dncnn":
        raise UsageError(f"unknown denoiser {plan.denoiser!r}; the builtin one is 'dncnn'.")
    if plan.training is None:
        raise UsageError(f"spec '{plan.spec.name}' needs `train` to train its denoiser.")
    # not ctx.build_model: a model handed to run() is the detector, never the denoiser
    model = build_model(ctx.seed, "denoiser", DnCNN, ctx.device)
    sigma = plan.smooth.sigma
    gen = ctx.generator("train-denoiser")
    ctx.checkpoint(
        "denoiser.pt",
        model,
        lambda: train_denoiser(model, train, sigma, plan.training, gen),
        stage="train_denoiser",
    )
    return model.eval()
