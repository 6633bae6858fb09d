"""A DAG-style attack on the smoothed detector (§3.6 "Tightness").

Dense Adversary Generation pushes, at every ground-truth object, the detector's objectness
down and the true class's logit below the best other class.  The smoothed detector's gradient is
estimated with a few Gaussian draws per step (expectation over transformation); steps are
normalised l2 PGD steps, projected into the open l2 ball of radius ``eps`` and onto ``[0, 1]``.
Needs a detector exposing ``raw(x)`` and ``stride`` (the builtin :class:`TinyDetector` does).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["dag_attack", "supports_dag"]


def supports_dag(detector: object) -> bool:
    return callable(getattr(detector, "raw", None)) and hasattr(detector, "stride")


def _cells(gt_boxes: torch.Tensor, stride: int, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    cx = ((gt_boxes[:, 0] + gt_boxes[:, 2]) / 2 / stride).long().clamp(0, grid - 1)
    cy = ((gt_boxes[:, 1] + gt_boxes[:, 3]) / 2 / stride).long().clamp(0, grid - 1)
    return cy, cx


def _dag_loss(raw: torch.Tensor, cy, cx, labels: torch.Tensor) -> torch.Tensor:
    """Objectness logit plus true-class margin at each object's cell (to be minimised)."""
    at = raw[:, :, cy, cx]  # (B, 5 + classes, objects)
    logits = at[:, 5:]
    true = logits.gather(1, labels.view(1, 1, -1).expand(logits.shape[0], 1, -1)).squeeze(1)
    other = logits.scatter(1, labels.view(1, 1, -1).expand(logits.shape[0], 1, -1), -1e9)
    return (at[:, 0] + true - other.amax(dim=1)).sum(dim=1).mean()


def dag_attack(
    detector,
    denoiser: Callable[[torch.Tensor], torch.Tensor] | None,
    image: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    eps: float,
    sigma: float,
    steps: int,
    noise_samples: int,
    generator: torch.Generator,
    step_size: float | None = None,
) -> torch.Tensor:
    """An adversarial image ``x + delta`` with ``||delta||_2 < eps`` (strictly)."""
    if gt_boxes.shape[0] == 0:
        return image.clone()
    radius = eps * (1 - 1e-6)
    alpha = step_size if step_size is not None else 2.5 * eps / steps
    grid = image.shape[-1] // detector.stride
    cy, cx = _cells(gt_boxes, detector.stride, grid)
    delta = torch.zeros_like(image)
    for _ in range(steps):
        delta.requires_grad_(True)
        noise = torch.randn((noise_samples, *image.shape), generator=generator, device=image.device)
        batch = (image + delta).unsqueeze(0) + sigma * noise
        if denoiser is not None:
            batch = denoiser(batch)
        loss = _dag_loss(detector.raw(batch), cy, cx, gt_labels)
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = delta - alpha * grad / grad.norm().clamp(min=1e-12)
            delta = delta * torch.clamp(radius / delta.norm().clamp(min=1e-12), max=1.0)
            delta = (image + delta).clamp(0.0, 1.0) - image
    return (image + delta).detach()
