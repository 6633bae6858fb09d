"""All-patch certification (2.11): an image is certified when the worst-case lower bound of
every margin ``z_y - z_j`` (j != y) over all placements is positive. Sound or silent: an
unsupported layer gives ``unknown`` with the reason, never a certificate.
"""

from __future__ import annotations

import enum

import attrs
import torch
from torch import Tensor, nn

from threatlang.bounds import LowerSlope, UnsupportedLayer
from threatlang.bounds.engine import BoundConfig, Method

from .config import Engine
from .margins import WorstCase, worst_margins
from .patches import PatchThreat
from .select import Bounder, select_engine
from .validation import patch_points, validate


class Outcome(enum.Enum):
    CERTIFIED = "certified"
    MISCLASSIFIED = "misclassified"  # the clean image is already wrong: a counterexample
    NOT_CERTIFIED = "not_certified"  # bound inconclusive
    UNSUPPORTED = "unsupported"
    ENGINE_DEFECT = "engine_defect"  # the bound exceeds a margin observed in the threat region


@attrs.frozen
class CertifyConfig:
    method: Method = Method.IBP
    chunk: int = attrs.field(default=256, validator=attrs.validators.ge(1))
    batch_size: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    local: bool | None = None  # receptive-field engine; None picks by image size
    # the margin bound must exceed tolerance * max(1, |clean logits|): float32 rounding in the
    # bound computation is relative to the magnitudes involved
    tolerance: float = 1e-5
    slope: LowerSlope = LowerSlope.ZERO  # CROWN's lower ReLU slope
    engine: Engine = Engine.AUTO  # ours, auto_lirpa, or auto (ours where it can)


@attrs.frozen
class PatchCertificate:
    index: int
    label: int
    predicted: int
    outcome: Outcome
    margin: float  # lower bound of the worst runner-up margin (nan when unsupported)
    runner_up: int
    shape_index: int
    location: tuple[int, int]
    reason: str | None = None


def certify_patches(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    cfg: CertifyConfig = CertifyConfig(),
) -> list[PatchCertificate]:
    """One certificate per image of ``x`` (tensors on the model's device)."""
    model.eval()
    try:
        net = select_engine(model, cfg.engine, x)
    except UnsupportedLayer as err:
        return [_unsupported(i, int(y[i]), str(err)) for i in range(x.shape[0])]
    out: list[PatchCertificate] = []
    bcfg = BoundConfig(cfg.method, cfg.slope)
    with torch.no_grad():
        for start in range(0, x.shape[0], cfg.batch_size):
            xb, yb = x[start : start + cfg.batch_size], y[start : start + cfg.batch_size]
            try:
                out += _certify_batch(net, xb, yb, threat, cfg, bcfg, start)
            except UnsupportedLayer as err:
                out += [_unsupported(start + i, int(yb[i]), str(err)) for i in range(xb.shape[0])]
    return out


def _certify_batch(
    net: Bounder,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    cfg: CertifyConfig,
    bcfg: BoundConfig,
    offset: int,
) -> list[PatchCertificate]:
    logits = net.logits(x)
    pred = logits.argmax(1)
    need = cfg.tolerance * logits.abs().amax(1).clamp(min=1.0)
    wc = worst_margins(net, x, y, threat, chunk=cfg.chunk, cfg=bcfg, local=cfg.local)
    if cfg.method is not Method.IBP:  # both bounds are sound: keep the tighter one per class
        ibp = worst_margins(net, x, y, threat, chunk=cfg.chunk, local=cfg.local)
        take = ibp.margins > wc.margins
        wc = WorstCase(
            torch.where(take, ibp.margins, wc.margins),
            torch.where(take, ibp.shape_index, wc.shape_index),
            torch.where(take[..., None], ibp.location, wc.location),
        )
    worst, runner_up = wc.runner_up(y)
    check = validate(net, x, y, patch_points(x, threat), worst, "patch placements")
    certs = []
    for i in range(x.shape[0]):
        reason = None
        if pred[i] != y[i]:
            outcome = Outcome.MISCLASSIFIED
        elif bool(check.violated[i]):
            outcome, reason = Outcome.ENGINE_DEFECT, check.reason(i, float(worst[i]))
        elif torch.isfinite(worst[i]) and worst[i] > need[i]:
            outcome = Outcome.CERTIFIED
        else:
            outcome = Outcome.NOT_CERTIFIED
        j = int(runner_up[i])
        loc = wc.location[i, j].tolist()
        certs.append(
            PatchCertificate(
                offset + i,
                int(y[i]),
                int(pred[i]),
                outcome,
                float(worst[i]),
                j,
                int(wc.shape_index[i, j]),
                (loc[0], loc[1]),
                reason,
            )
        )
    return certs


def _unsupported(index: int, label: int, reason: str) -> PatchCertificate:
    return PatchCertificate(
        index, label, -1, Outcome.UNSUPPORTED, float("nan"), -1, -1, (-1, -1), reason
    )
