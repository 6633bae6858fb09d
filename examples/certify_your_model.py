"""Certify a model of your own: your module, your data, a threat written in Python.

Run: python examples/certify_your_model.py   (about a minute on 2 CPU cores)

The module below is written the way people write models: input normalisation with buffers, a
residual block in `forward`, a forward hook that only watches (it returns None, so the output
is the module's own). It is trained here in a few seconds on scikit-learn's 8x8 digits; bring
your trained module instead. threatlang certifies exactly the function your module computes,
or says why it will not: the second model routes images through a Python `if` on the input's
values, and a certificate for one branch would say nothing about the other, so the answer is
a one-sentence `unknown` (or a refusal), never a certificate.
"""

from __future__ import annotations

import collections

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

import threatlang
from threatlang import ir


class Normalise(nn.Module):
    """(x - mean) / std, with the statistics stored as buffers (saved with the weights)."""

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.a = nn.Conv2d(channels, channels, 3, padding=1)
        self.b = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(h + self.b(F.relu(self.a(h))))


class DigitNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = Normalise(0.3, 0.4)
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.block = ResidualBlock(8)
        self.head = nn.Linear(8 * 8 * 8, 10)
        self.seen = collections.Counter()  # what the hook watches: batches per input size
        self.head.register_forward_hook(self._watch)

    def _watch(self, module, inputs, output) -> None:
        self.seen[tuple(inputs[0].shape[1:])] += 1  # returns None: the output is unchanged

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(F.relu(self.stem(self.norm(x))))
        return self.head(torch.flatten(h, 1))


class RoutedNet(nn.Module):
    """Data-dependent control flow: faint images go through a second head."""

    def __init__(self, net: DigitNet) -> None:
        super().__init__()
        self.net = net
        self.faint_head = nn.Linear(10, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if float(x.mean()) < 0.25:  # a Python branch on the input's values
            return self.faint_head(out)
        return out


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    d = load_digits()
    return torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None], torch.tensor(d.target)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 150) -> nn.Module:
    """Plain full-batch training (with small input noise, so small balls can certify)."""
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(steps):
        noisy = (x + 0.02 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
        opt.zero_grad()
        F.cross_entropy(model(noisy), y).backward()
        opt.step()
    return model.eval()


#: the threat: every input within l-inf distance 0.005 or 0.01 of a test digit
SPEC = ir.Spec(
    name="my_digits",
    threat=ir.LpBall("input", "linf", [0.005, 0.01]),
    require=ir.LabelUnchanged(),
    actions=[ir.Certify("crown")],
    seed=0,
)


def report(title: str, result) -> None:
    m = result.summary.metrics
    statuses = collections.Counter(r.status.value for r in result.records)
    print(f"{title}: clean {m['clean_accuracy']:.3f}  certified {m['certified_accuracy']:.3f}"
          f"  soundness violations {m['soundness_violations']}  ({dict(statuses)})")  # fmt: skip
    reasons = collections.Counter(r.reason for r in result.records if r.reason)
    for reason, n in reasons.most_common(2):
        print(f"  {n} x {reason}")


if __name__ == "__main__":
    torch.manual_seed(0)
    x, y = digits()
    model = train(DigitNet(), x[:1200], y[:1200])
    test = (x[1200:1300], y[1200:1300])
    model.seen.clear()

    result = threatlang.run(
        SPEC, model=model, data=test, output="runs/my_digits", overwrite=True, quiet=True
    )
    report("your model", result)
    print(f"  the hook watched {sum(model.seen.values())} batches of the run; the model is back in "
          f"{'train' if model.training else 'eval'} mode")  # fmt: skip

    routed = RoutedNet(model).eval()
    try:
        refused = threatlang.run(
            SPEC, model=routed, data=test, output="runs/my_digits_routed", overwrite=True,
            quiet=True,
        )  # fmt: skip
    except threatlang.UsageError as err:  # refused before it ran, in one sentence
        print(f"the routed model: refused: {err}")
    else:
        report("the routed model", refused)
