"""Data and models for a detection run: synthetic scenes, the builtin detector and denoiser.

Trained models are saved under the run directory and reloaded on resume (weights only).
"""

from __future__ import annotations

import numpy as np
import torch

from .detection.models import DnCNN, TinyDetector
from .detection.scenes import SceneConfig, Scenes, make_scenes
from .detection.training import TrainConfig, train_denoiser, train_detector

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
    torchvision-style ``(image, target)`` pairs (test only) — else generated scenes."""
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
    limit = plan.spec.data.test_limit if plan.spec.data is not None else None
    train = make_scenes(opts.train_count, seed=2 * ctx.seed, cfg=cfg)
    test = make_scenes(limit or 100, seed=2 * ctx.seed + 1, cfg=cfg)
    return train, test


def _train_cfg(plan, ctx, epochs: int | None = None) -> TrainConfig:
    t = plan.train
    return TrainConfig(
        epochs=epochs or (t.epochs if t else 12),
        batch_size=t.batch_size if t else 64,
        lr=t.lr if t else 3e-3,
        seed=ctx.seed,
        device=ctx.device,
        noise_max=plan.train_options.noise,
    )


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
    """The API's model, else the spec's model file/code, else the builtin detector, trained."""
    if ctx.model is not None:
        return ctx.model
    loaded = model_from_spec(ctx, plan.spec.model, tuple(train.images.shape[1:]), num_classes)
    if loaded is not None:
        return loaded
    path = ctx.artifact("detector.pt")
    if path.exists() and ctx.resume:
        model = TinyDetector(num_classes=num_classes)
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.to(ctx.device).eval()
    model = train_detector(train, _train_cfg(plan, ctx), num_classes=num_classes)
    torch.save(model.state_dict(), path)
    return model.eval()


def build_denoiser(plan, ctx, train: Scenes):
    if plan.denoiser is None:
        return None
    if plan.denoiser != "dncnn":
        raise ValueError(f"unknown denoiser {plan.denoiser!r}; the builtin one is 'dncnn'")
    path = ctx.artifact("denoiser.pt")
    if path.exists() and ctx.resume:
        model = DnCNN()
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.to(ctx.device).eval()
    cfg = _train_cfg(plan, ctx, epochs=plan.train_options.denoiser_epochs)
    model = train_denoiser(train, plan.smooth.sigma, cfg)
    torch.save(model.state_dict(), path)
    return model.eval()
