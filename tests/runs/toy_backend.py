"""A small certifying backend for the run tests: an MLP trained on digits, certified per test
image against an linf ball by interval bound propagation, routed through `run_items`.

It stands in for a real backend so the executor/resume tests do not depend on one; the
certificate is real (interval arithmetic through Linear/ReLU), so the records carry values.
"""

from __future__ import annotations

import functools
import os
import time

import torch
from torch import nn

from threatlang.backends.base import (
    Backend,
    Capabilities,
    Offer,
    Plan,
    Record,
    Status,
    Summary,
    Table,
    Unsupported,
)
from threatlang.ir import (
    Certify,
    LabelUnchanged,
    Train,
)

SPEC = """threatlang 1
spec toy {
  model toy_mlp
  data digits { test_limit 40 }
  seed 0
  threat linf_ball { radius 0.01 }
  require label_unchanged
  train standard { epochs 4 }
  certify ibp
}
"""


def make_model(seed: int) -> nn.Sequential:
    gen = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> None:
    """Plain minibatch SGD (torch.optim would import torch._dynamo: seconds per process)."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(4):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            model.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad


def interval(model: nn.Sequential, lo: torch.Tensor, hi: torch.Tensor):
    for layer in model:
        if isinstance(layer, nn.Flatten):
            lo, hi = layer(lo), layer(hi)
        elif isinstance(layer, nn.Linear):
            mid, rad = (hi + lo) / 2, (hi - lo) / 2
            mid, rad = layer(mid), rad @ layer.weight.abs().T
            lo, hi = mid - rad, mid + rad
        elif isinstance(layer, nn.ReLU):
            lo, hi = lo.clamp(min=0), hi.clamp(min=0)
    return lo, hi


def certify_one(model: nn.Sequential, eps: float, delay: float, payload) -> Record:
    """Certify one image: the true logit's lower bound beats every other logit's upper bound."""
    item_id, x, y = payload
    start = time.perf_counter()
    time.sleep(delay)
    with torch.no_grad():
        pred = int(model(x[None]).argmax())
        lo, hi = interval(model, (x - eps).clamp(0, 1)[None], (x + eps).clamp(0, 1)[None])
    others = torch.cat([hi[0, :y], hi[0, y + 1 :]])
    margin = float(lo[0, y] - others.max())
    values = {"predicted": pred, "label": y, "margin_lower_bound": margin}
    seconds = time.perf_counter() - start
    if pred != y:
        return Record(item_id, Status.FALSIFIED, values, seconds, counterexample=x.tolist())
    if margin > 0:
        return Record(item_id, Status.CERTIFIED, values, seconds)
    return Record(item_id, Status.UNKNOWN, values, seconds, reason="interval bound inconclusive")


class ToyPlan(Plan):
    def __init__(self, spec):
        self.spec = spec

    def describe(self) -> str:
        return "train a toy MLP; certify each test image by interval bounds"

    def run(self, ctx) -> Summary:
        from threatlang.data import load_dataset
        from threatlang.runloop import run_items

        splits = load_dataset(self.spec.data, ctx.seed)
        model = make_model(ctx.seed)
        weights = ctx.artifact("model.pt")
        if ctx.resume and weights.exists():
            model.load_state_dict(torch.load(weights, weights_only=True))
        else:
            x, y = torch.from_numpy(splits.train.x), torch.from_numpy(splits.train.y)
            train(model, x, y, ctx.seed)
            torch.save(model.state_dict(), weights)
        model.eval()
        delay = float(os.environ.get("TOY_DELAY", "0"))
        fn = functools.partial(certify_one, model, self.spec.threat.eps, delay)
        items = [
            (f"test-{i}", (f"test-{i}", torch.from_numpy(x), int(y)))
            for i, (x, y) in enumerate(zip(splits.test.x, splits.test.y, strict=True))
        ]
        records = run_items(ctx, items, fn, "certify")
        n = len(records)
        clean = sum(r.values["predicted"] == r.values["label"] for r in records) / n
        cert = sum(r.status is Status.CERTIFIED for r in records) / n
        table = Table("toy", ("metric", "value"), [("clean", clean), ("certified", cert)])
        return Summary({"clean_accuracy": clean, "certified_accuracy": cert}, (table,))


class ToyBackend(Backend):
    """Registered as a plugin (entry point `toy = "toy_backend:BACKEND"`) by the tests; its
    priority puts it before the shipped backends, its architecture makes it the only taker."""

    name = "toy"
    capabilities = Capabilities(
        families={"input ball"},
        properties={LabelUnchanged},
        offers=[Offer(Certify, "ibp"), Offer(Train, "standard")],
        architectures={"toy_mlp": "toy_backend:make_model"},
        priority=0,
    )

    def refine(self, spec):
        if spec.model is not None and spec.model.architecture != "toy_mlp":
            return [Unsupported(spec.model, "the toy backend runs `model toy_mlp` only")]
        return []

    def compile(self, spec):
        return ToyPlan(spec)


BACKEND = ToyBackend()
