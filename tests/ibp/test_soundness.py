"""Soundness suite: nothing the verifier certified can be broken.

A small model is certificate-trained on digits; every image it certifies (IBP and CROWN) is
then attacked by exhaustive location search with every corner-valued patch content plus many
random contents, and by PGD anywhere. Any misclassification would be an unsound certificate.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from threatlang.backends.ibp.attack import AttackConfig, AttackMethod, patch_attack
from threatlang.backends.ibp.certify import CertifyConfig, Outcome, certify_patches
from threatlang.backends.ibp.models import mlp255
from threatlang.backends.ibp.patches import PatchThreat, apply_patch, mask_tensor, offsets, square
from threatlang.backends.ibp.train import Strategy, TrainConfig, train
from threatlang.bounds.engine import Method

from .helpers import digits

THREAT = PatchThreat((square(2),))


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    xtr, ytr, xte, yte = digits(500, 100)
    model = mlp255((1, 8, 8), 10, width=0.25)
    cfg = TrainConfig(strategy=Strategy.ALL_PATCH, epochs=6, lr=3e-3, batch_size=50)
    train(model, xtr, ytr, THREAT, cfg, seed=0)
    return model.eval(), xte, yte


def _certified(model, x, y, method: Method) -> torch.Tensor:
    certs = certify_patches(model, x, y, THREAT, CertifyConfig(method=method))
    return torch.tensor([c.outcome is Outcome.CERTIFIED for c in certs])


@pytest.mark.parametrize("method", [Method.IBP, Method.CROWN])
def test_exhaustive_search_breaks_no_certificate(trained, method: Method) -> None:
    model, x, y = trained
    ok = _certified(model, x, y, method)
    assert int(ok.sum()) >= 5, "the fixture should certify some images"
    xs, ys = x[ok], y[ok]
    mask = mask_tensor(square(2))
    offs = offsets(THREAT.locations, (8, 8), (2, 2))
    corner = torch.tensor(list(itertools.product((0.0, 1.0), repeat=4))).reshape(-1, 1, 2, 2)
    gen = torch.Generator().manual_seed(0)
    contents = torch.cat([corner, torch.rand(48, 1, 2, 2, generator=gen)])
    with torch.no_grad():
        for content in contents:
            c = content.expand(xs.shape[0], offs.shape[0], 1, 2, 2)
            imgs = apply_patch(xs, mask, offs, c)
            pred = model(imgs.reshape(-1, 1, 8, 8)).argmax(1).reshape(xs.shape[0], -1)
            assert bool((pred == ys[:, None]).all())


def test_pgd_breaks_no_certificate(trained) -> None:
    model, x, y = trained
    ok = _certified(model, x, y, Method.IBP)
    cfg = AttackConfig(method=AttackMethod.PGD, steps=30, restarts=2)
    res = patch_attack(model, x[ok], y[ok], THREAT, cfg, seed=1)
    assert not bool(res.success.any())


def test_certified_accuracy_bounded_by_empirical(trained) -> None:
    model, x, y = trained
    ok = _certified(model, x, y, Method.IBP)
    crown = _certified(model, x, y, Method.CROWN)
    res = patch_attack(model, x, y, THREAT, AttackConfig(steps=20), seed=0)
    clean = model(x).argmax(1) == y
    assert int(ok.sum()) <= int((~res.success).sum()) <= int(clean.sum())
    assert bool((crown | ~ok).all()), "CROWN (max with IBP) certifies whatever IBP certifies"
