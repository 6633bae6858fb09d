"""Builders used by the model-loading tests (imported by name, like a backend's models)."""

from torch import nn


def tiny(input_shape, num_classes, hidden=8):
    c, h, w = input_shape
    return nn.Sequential(
        nn.Flatten(), nn.Linear(c * h * w, hidden), nn.ReLU(), nn.Linear(hidden, num_classes)
    )


class Custom:
    """Not a tensor: `weights_only=True` must refuse to unpickle it."""


def user_model(hidden=4):
    return nn.Sequential(nn.Linear(3, hidden), nn.ReLU())
