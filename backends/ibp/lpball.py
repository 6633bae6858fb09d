"""Certificates for l-inf / l2 input balls: margin lower bounds at each listed radius.

An l-inf ball is intersected with the input range ``[low, high]`` (the threat covers valid
inputs only); an l2 ball is bounded whole, a superset, so its certificate is sound either way."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from threatlang.bounds.engine import BoundConfig
from threatlang.bounds.inputs import L2Input, linf_ball

from .validation import set_points, validate


def certify_ball(
    net,
    x: Tensor,
    y: Tensor,
    radii: tuple[float, ...],
    l2: bool,
    cfg: BoundConfig = BoundConfig(),
    tolerance: float = 1e-5,
    low: float = 0.0,
    high: float = 1.0,
) -> tuple[Tensor, Tensor, list[str | None]]:
    """(certified (B, R) bool, worst runner-up margin bound (B, R), per row the engine defect
    found, if any) for each radius; `net` is any engine with `margins`, `logits`,
    `bounded_forward` and `model` (ours or auto_LiRPA's, see `.select`). Raises
    ``TranslationMismatch`` when the bounded computation is not the model's."""
    out_ok, out_m = [], []
    defects: list[str | None] = [None] * x.shape[0]
    with torch.no_grad():
        for eps in radii:
            inputs = L2Input(x, eps) if l2 else linf_ball(x, eps, low, high)
            m = net.margins(inputs, y, cfg)
            if cfg.method.value != "ibp" and net.ibp_sound_for(inputs):
                m = torch.maximum(m, net.margins(inputs, y, BoundConfig()))
            worst = m.scatter(1, y[:, None], float("inf")).amin(1)
            scale = net.logits(x).abs().amax(1).clamp(min=1.0)
            what = f"points of the {'l2' if l2 else 'l-inf'} ball of radius {eps:g}"
            check = validate(net, x, y, set_points(inputs), worst, what)
            for i in check.violated.nonzero().flatten().tolist():
                defects[i] = defects[i] or check.reason(i, float(worst[i]))
            out_ok.append((worst > tolerance * scale) & ~check.violated.to(worst.device))
            out_m.append(worst)
    return torch.stack(out_ok, 1), torch.stack(out_m, 1), defects


def predict(model: nn.Module, x: Tensor, batch: int = 256) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, x.shape[0], batch)])
