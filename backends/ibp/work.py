"""Groups of test images' certificates and records as work items for the shared run loop.

The model, bound configuration and threat are shared by every image, so they are bound once
with ``functools.partial`` (a Ray worker unpickles them once); an item carries only the image's
index, pixels, label, clean prediction and its attack row. The record is built by
:func:`.outcomes.make_record`, so it is the same on any executor.
"""

from __future__ import annotations

import time

import attrs
import torch
from torch import Tensor, nn

from threatlang.bounds import UnsupportedLayer
from threatlang.bounds.engine import BoundConfig
from threatlang.report import Record

from .certify import CertifyConfig, certify_patches
from .config import Engine
from .lpball import certify_ball
from .outcomes import AttackRow, BallCertificate, Certificate, Unbounded, make_record
from .patches import PatchThreat
from .select import select_engine

#: per-image payload: (index, image (C, H, W), label, clean prediction, attack row or None,
#: seconds of shared work (training, the batched attack) charged to this image)
Item = tuple[int, Tensor, int, int, AttackRow | None, float]

#: images per work item: bounds are computed for a whole group at once (batched bound
#: propagation is 3-4x faster per image than one image at a time), one record per image
GROUP = 32


@attrs.frozen
class PatchCertify:
    threat: PatchThreat
    config: CertifyConfig


@attrs.frozen
class BallCertify:
    radii: tuple[float, ...]
    l2: bool
    bound: BoundConfig
    engine: Engine
    low: float  # the input range an l-inf ball is clipped to
    high: float


@attrs.frozen
class CertifyJob:
    """What every image of one run shares; ``certify`` is None when the spec only attacks."""

    model: nn.Module  # eval mode
    device: str
    certify: PatchCertify | BallCertify | None
    prefix: str = ""  # record ids are prefix + "test-<index>"


def certify_group(job: CertifyJob, items: list[Item]) -> tuple[Record, ...]:
    """Certify a group of images in one batched bound computation; one record per image."""
    start = time.perf_counter()
    certs: list[Certificate | None] = [None] * len(items)
    if job.certify is not None:
        xb = torch.stack([it[1] for it in items]).to(job.device)
        yb = torch.tensor([it[2] for it in items], dtype=torch.long, device=job.device)
        certs = _certify(job.model, job.certify, xb, yb)
    each = (time.perf_counter() - start) / len(items)
    records = []
    for cert, (i, _, label, pred, att, shared) in zip(certs, items, strict=True):
        record = make_record(i, label, pred, cert, att, shared + each)
        records.append(attrs.evolve(record, id=job.prefix + record.id) if job.prefix else record)
    return tuple(records)


def _certify(model: nn.Module, how: PatchCertify | BallCertify, x: Tensor, y: Tensor) -> list:
    if isinstance(how, PatchCertify):
        return certify_patches(model, x, y, how.threat, how.config)
    try:
        net = select_engine(model, how.engine, x)
        ok, margin, defects = certify_ball(
            net, x, y, how.radii, how.l2, how.bound, low=how.low, high=how.high
        )
    except UnsupportedLayer as err:
        return [Unbounded(str(err))] * x.shape[0]
    ok, margin = ok.cpu(), margin.cpu()
    return [
        BallCertificate(how.radii, tuple(ok[j].tolist()), tuple(margin[j].tolist()), defects[j])
        for j in range(x.shape[0])
    ]
