"""Training losses on batches of candidate models, raw and scale-normalised.

Chapter 7 compares optimizers "at matched train-loss levels after the weights have been
normalised": a ReLU network's decisions do not change when its logits are scaled, but its
cross-entropy does, so a raw loss level says more about the weight scale than about the fit.
We normalise the logits of each model by the root-mean-square of its centred logit vectors over
the training set (for two classes: by the RMS of the logit margin), then take cross-entropy.
The normalised loss is invariant to scaling the logits; at 100% training accuracy it lies in
``[softplus(-1), log 2) = [0.313, 0.693)`` for two classes, with the minimum reached when all
margins are equal — the range of Table 7.2's loss bins.

Every function takes logits shaped ``(models, samples, classes)`` so that thousands of guessed
models are scored in one call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import LossKind

__all__ = ["LossKind", "accuracy", "cross_entropy", "normalise_logits", "training_loss"]

_EPS = 1e-12


def normalise_logits(logits: torch.Tensor) -> torch.Tensor:
    """Scale each model's logits so the RMS of its (centred, x sqrt 2) logit vectors is 1.

    ``logits``: ``(models, samples, classes)``. A model whose logits are all equal (zero margin
    everywhere) is left at zero, giving loss ``log K``.
    """
    centred = logits - logits.mean(dim=-1, keepdim=True)
    scale = torch.sqrt(2.0 * centred.pow(2).sum(dim=-1).mean(dim=-1))  # (models,)
    return centred / scale.clamp_min(_EPS)[:, None, None]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per model: ``(models, samples, K), (samples,) -> (models,)``."""
    logp = F.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, labels.view(1, -1, 1).expand(logits.shape[0], -1, 1))
    return -picked.squeeze(-1).mean(dim=-1)


def training_loss(logits: torch.Tensor, labels: torch.Tensor, kind: LossKind) -> torch.Tensor:
    """Loss per model of the given kind."""
    if kind is LossKind.NORMALISED:
        logits = normalise_logits(logits)
    return cross_entropy(logits, labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Fraction of samples each model classifies correctly: ``(models,)``.

    Ties (equal logits) count as wrong, so a constant model never "fits" the data.
    """
    top2 = logits.topk(2, dim=-1).values if logits.shape[-1] > 1 else None
    pred = logits.argmax(dim=-1)
    correct = pred == labels.view(1, -1)
    if top2 is not None:
        correct = correct & (top2[..., 0] > top2[..., 1])
    return correct.float().mean(dim=-1)
