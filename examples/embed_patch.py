"""Embed threatlang in Python: build the IR by hand, bring your own torch model, certify it.

Run: python examples/embed_patch.py   (about a minute on 2 CPU cores)

The spec below is the same IR a `.threat` file produces; building it in code runs the same
validators, and `threatlang.run` trains your module with certificate training over every 2x2
patch location, attacks it and certifies it.
"""

from __future__ import annotations

import torch
from torch import nn

import threatlang
from threatlang import ir

spec = ir.Spec(
    name="embedded_patch",
    data=ir.DataRef("digits", test_limit=150),
    threat=ir.PatchSet(
        shapes=[ir.Square(2)], locations=ir.AllLocations(), values=ir.ValueRange(0, 1)
    ),
    require=ir.LabelUnchanged(),
    actions=[
        ir.Train("all_patch", epochs=12, lr=2e-3, batch_size=64, warmup=7),
        ir.Attack("pgd", steps=20, restarts=1, locations="anywhere"),
        ir.Certify("ibp"),
    ],
    seed=0,
)

torch.manual_seed(0)
model = nn.Sequential(nn.Flatten(), nn.Linear(64, 255), nn.ReLU(), nn.Linear(255, 10))

if __name__ == "__main__":
    print(threatlang.plan(spec, model_given=True).describe())
    result = threatlang.run(
        spec, model=model, output="runs/embedded_patch", overwrite=True, quiet=True
    )
    m = result.summary.metrics
    print(
        f"clean {m['clean_accuracy']:.3f}  empirical {m['empirical_accuracy']:.3f}  "
        f"certified {m['certified_accuracy']:.3f}  ({len(result.records)} records in {result.out_dir})"
    )
