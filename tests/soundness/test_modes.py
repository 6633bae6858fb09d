"""`run()` hands the module back in the train/eval modes it came in, submodule by submodule
(issue 19: it came back in eval mode)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import threatlang
from threatlang import ir


def _mixed() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Dropout(0.1),
        nn.Flatten(), nn.Linear(72, 3),
    )  # fmt: skip
    model.train()
    model[1].eval()  # a frozen batch norm inside a model in training
    return model


@pytest.mark.parametrize("method", ["ibp", "crown"])
def test_run_restores_every_submodules_mode(method, tmp_path):
    model = _mixed()
    before = [m.training for m in model.modules()]
    x = torch.rand(3, 1, 6, 6)
    with torch.no_grad():
        y = model.eval()(x).argmax(1)
    model.train()
    model[1].eval()
    spec = ir.Spec(
        name="modes",
        threat=ir.LpBall("input", "linf", [0.01]),
        require=ir.LabelUnchanged(),
        actions=[ir.Certify(method)],
        seed=0,
    )
    threatlang.run(spec, model=model, data=(x, y), output=tmp_path / "run", quiet=True)
    assert [m.training for m in model.modules()] == before
