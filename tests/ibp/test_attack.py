"""Patch attacks return real counterexamples that lie in the threat set."""

from __future__ import annotations

import torch

from threatlang.backends.ibp.attack import AttackConfig, AttackMethod, LocationSearch, patch_attack
from threatlang.backends.ibp.models import mlp255
from threatlang.backends.ibp.patches import LocationKind, Locations, PatchThreat, square
from threatlang.backends.ibp.train import Strategy, TrainConfig, train

from .helpers import digits


def test_attack_counterexamples_are_valid() -> None:
    torch.manual_seed(0)
    xtr, ytr, xte, yte = digits(400, 60)
    model = mlp255((1, 8, 8), 10, width=0.25)
    train(model, xtr, ytr, None, TrainConfig(strategy=Strategy.STANDARD, epochs=15, lr=3e-3))
    threat = PatchThreat((square(3),), Locations(LocationKind.STRIDE, stride=1), 0.0, 1.0)
    rates = {}
    for search in LocationSearch:
        for method in AttackMethod:
            res = patch_attack(
                model, xte, yte, threat, AttackConfig(method, search, steps=10), seed=0
            )
            rates[search, method] = float(res.success.float().mean())
            with torch.no_grad():
                pred = model(res.adversarial).argmax(1)
            assert bool((pred[res.success] != yte[res.success]).all())
            for i in res.success.nonzero().squeeze(1).tolist():
                r, c = res.location[i].tolist()
                diff = (res.adversarial[i] != xte[i]).squeeze(0)
                outside = diff.clone()
                outside[r : r + 3, c : c + 3] = False
                assert not bool(outside.any())
                assert (
                    float(res.adversarial[i].min()) >= 0.0
                    and float(res.adversarial[i].max()) <= 1.0
                )
    # searching every location is at least as strong as the corners only
    for method in AttackMethod:
        assert rates[LocationSearch.ANYWHERE, method] >= rates[LocationSearch.CORNERS, method]
    assert rates[LocationSearch.ANYWHERE, AttackMethod.PGD] > 0.3
