"""Attacks on the model as called, inside the set a certificate speaks about.

Each returns a sentence describing a point of the set where the label changes, or None. They
call the module as the user's code would (hooks, dropout and branches included), so a
certificate of some other function is caught. Points stay inside [0, 1] (the input domain), a
subset of every set a backend may bound.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

#: how often the clean point is evaluated again (a nondeterministic model shows here)
REPEATS = 8


def margin(logits: Tensor, label: int) -> Tensor:
    """logit[label] - max other logit, per row."""
    other = logits.clone()
    other[:, label] = -math.inf
    return logits[:, label] - other.amax(1)


def _first_wrong(model, points: Tensor, label: int, what: str) -> str | None:
    with torch.no_grad():
        m = margin(model(points), label)
    bad = (m < 0).nonzero().flatten()
    if len(bad) == 0:
        return None
    k = int(bad[0])
    return f"{what}: margin {float(m[k]):.4g} at a point {_distance(points[k])}"


def _distance(point: Tensor) -> str:
    return f"with pixel range [{float(point.min()):.3g}, {float(point.max()):.3g}]"


def repeat_clean(model, x: Tensor, label: int) -> str | None:
    """The clean point itself, evaluated REPEATS times."""
    return _first_wrong(model, x[None].expand(REPEATS, *x.shape), label, "the clean point")


def _project(d: Tensor, eps: float, norm: str) -> Tensor:
    if norm == "linf":
        return d.clamp(-eps, eps)
    n = d.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *([1] * (d.dim() - 1)))
    return d * (eps / n).clamp(max=1.0)


def ball_attack(
    model, x: Tensor, label: int, eps: float, norm: str, gen: torch.Generator
) -> str | None:
    """Random points and corners of the ball, then PGD with restarts on the margin."""
    n = 64
    shape = (n, *x.shape)
    if norm == "linf":
        samples = (torch.rand(shape, generator=gen) * 2 - 1) * eps
        corners = torch.randint(0, 2, shape, generator=gen).float().mul(2).sub(1) * eps
        points = torch.cat([samples, corners])
    else:
        d = torch.randn(shape, generator=gen)
        d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        r = torch.rand(n, generator=gen).pow(1 / x.numel()).view(-1, 1, 1, 1)
        points = torch.cat([d * r * eps, d * eps])
    found = _first_wrong(model, (x + points).clamp(0, 1), label, f"sampled in the {norm} ball")
    return found or _pgd(model, x, label, eps, norm, gen)


def _pgd(model, x, label, eps, norm, gen, steps: int = 25, restarts: int = 4) -> str | None:
    start = _project(torch.randn((restarts, *x.shape), generator=gen) * eps, eps, norm)
    d = ((x + start).clamp(0, 1) - x).detach()
    for _ in range(steps):
        d.requires_grad_(True)
        m = margin(model(x + d), label)
        (grad,) = torch.autograd.grad(m.sum(), d)
        if norm == "linf":
            step = grad.sign() * (eps / 4)
        else:
            step = grad / grad.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, 1, 1, 1) * eps / 4
        d = _project(d.detach() - step, eps, norm)
        d = ((x + d).clamp(0, 1) - x).detach()
    return _first_wrong(model, x + d, label, f"PGD in the {norm} ball")


def box_attack(model, lower: Tensor, upper: Tensor, label: int, gen) -> str | None:
    """An input box: its corners (random ones), random points, and PGD from its centre."""
    n = 128
    u = torch.rand((n, *lower.shape), generator=gen)
    corners = torch.randint(0, 2, (n, *lower.shape), generator=gen).float()
    points = lower + torch.cat([u, corners]) * (upper - lower)
    found = _first_wrong(model, points, label, "sampled in the box")
    if found:
        return found
    centre, half = (lower + upper) / 2, (upper - lower) / 2
    d = (torch.rand((4, *lower.shape), generator=gen) * 2 - 1) * half
    for _ in range(25):
        d.requires_grad_(True)
        (grad,) = torch.autograd.grad(margin(model(centre + d), label).sum(), d)
        d = torch.maximum(torch.minimum(d.detach() - grad.sign() * half / 4, half), -half)
    return _first_wrong(model, centre + d, label, "PGD in the box")


def patch_attack(
    model, x: Tensor, label: int, size: int, low: float, high: float, gen: torch.Generator
) -> str | None:
    """Every location; at each, every patch content on a grid of values (the corners of the
    value box included: 9 levels for a 1x1 patch, 3 per pixel for 2x2) and 16 random ones."""
    levels = 9 if size == 1 else 3
    grid = torch.tensor(list(itertools.product(torch.linspace(low, high, levels).tolist(),
                                               repeat=size * size)))  # fmt: skip
    rand = low + torch.rand((16, size * size), generator=gen) * (high - low)
    contents = torch.cat([grid, rand]).view(-1, 1, size, size).expand(-1, x.shape[0], -1, -1)
    _, h, w = x.shape
    for r in range(h - size + 1):
        for c in range(w - size + 1):
            xs = x.expand(len(contents), -1, -1, -1).clone()
            xs[:, :, r : r + size, c : c + size] = contents
            found = _first_wrong(model, xs, label, f"{size}x{size} patch at ({r}, {c})")
            if found:
                return found
    return None


__all__ = ["ball_attack", "box_attack", "margin", "patch_attack", "repeat_clean"]
