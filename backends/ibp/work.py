"""Groups of test images' certificates and records as work items for the shared run loop (`run_items`).

The model, bound configuration and threat are shared by every image, so they are bound once
with ``functools.partial`` (a Ray worker unpickles them once); an item carries only the image's
index, pixels, label, clean prediction and its row of the patch attack's results. The record
is built by :func:`.outcomes.make_record`, so it is the same on any executor.
"""

from __future__ import annotations

import time
from typing import Any

import attrs
import torch
from torch import Tensor, nn

from threatlang.report import Record

from .bounds import UnsupportedLayer
from .certify import CertifyConfig, certify_patches
from .engine import BoundConfig, BoundedNetwork
from .lpball import certify_ball
from .outcomes import make_record
from .patches import PatchThreat

#: per-image payload: (index, image (C, H, W), label, clean prediction, attack row or None,
#: seconds of shared work (training, the batched attack) charged to this image)
Item = tuple[int, Tensor, int, int, dict | None, float]


@attrs.frozen
class PatchCertify:
    threat: PatchThreat
    config: CertifyConfig


@attrs.frozen
class BallCertify:
    radii: tuple[float, ...]
    l2: bool
    bound: BoundConfig


@attrs.frozen
class CertifyJob:
    """What every image of one run shares; ``certify`` is None when the spec only attacks."""

    model: nn.Module  # eval mode
    device: str
    certify: PatchCertify | BallCertify | None
    attack_threat: PatchThreat | None  # to cut a counterexample patch out of an attack row
    prefix: str = ""  # record ids are prefix + "test-<index>"


def attack_rows(att: dict[str, Any]) -> list[dict[str, Tensor]]:
    """The batched attack result split into one row per image (leading dimension kept)."""
    keys = ("success", "location", "shape", "adv")
    return [{k: att[k][j : j + 1] for k in keys} for j in range(len(att["success"]))]


#: images per work item: bounds are computed for a whole group at once (batched bound
#: propagation is 3-4x faster per image than one image at a time), one record per image
GROUP = 32


def certify_group(job: CertifyJob, items: list[Item]) -> tuple[Record, ...]:
    """Certify a group of images in one batched bound computation; one record per image."""
    start = time.perf_counter()
    cert = None
    if job.certify is not None:
        xb = torch.stack([it[1] for it in items]).to(job.device)
        yb = torch.tensor([it[2] for it in items], dtype=torch.long, device=job.device)
        cert = _certify(job.model, job.certify, xb, yb)
    each = (time.perf_counter() - start) / len(items)
    records = []
    for j, (i, _, label, pred, att, shared) in enumerate(items):
        per: dict[str, Any] = {}
        if att is not None:
            per["attack"] = {**att, "threat": job.attack_threat}
        if cert is not None:
            per["certify"] = _row(cert, j)
        record = make_record(i, 0, label, pred, per, shared + each)
        records.append(attrs.evolve(record, id=job.prefix + record.id) if job.prefix else record)
    return tuple(records)


def _row(cert: dict, j: int) -> dict:
    """Image j's part of a batched certificate, indexed as image 0 (as `make_record` reads it)."""
    if "certs" in cert:
        return {"certs": [cert["certs"][j]]}
    if "ball_ok" in cert:
        return {
            **cert,
            "ball_ok": cert["ball_ok"][j : j + 1],
            "ball_margin": cert["ball_margin"][j : j + 1],
        }
    return cert


def _certify(model: nn.Module, how: PatchCertify | BallCertify, x: Tensor, y: Tensor) -> dict:
    if isinstance(how, PatchCertify):
        return {"certs": certify_patches(model, x, y, how.threat, how.config)}
    try:
        net = BoundedNetwork(model)
    except UnsupportedLayer as err:
        return {"unsupported": str(err)}
    ok, margin = certify_ball(net, x, y, how.radii, how.l2, how.bound)
    return {"ball_ok": ok.cpu(), "ball_margin": margin.cpu(), "radii": how.radii}
