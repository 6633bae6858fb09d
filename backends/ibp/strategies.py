"""Chapter-2 training strategies beyond all-patch/random: their losses, behind one signature.

A ``CertificateLoss`` is ``loss(net, x, y, scale, gen) -> Tensor``; guided (§2.4.2) and pooled
(§2.7.3) training plug into the certificate-training loop through it. ``fit`` is that loop for
a given loss (the §2.7.1 warm-up and learning-rate schedule), so these strategies run even
where the main training entry point has no loss hook yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn

from .engine import BoundedNetwork
from .schedule import Schedule
from .train import EpochLog


class CertificateLoss(Protocol):
    def __call__(
        self, net: BoundedNetwork, x: Tensor, y: Tensor, scale: float, gen: torch.Generator
    ) -> Tensor: ...


def fit(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: CertificateLoss,
    sched: Schedule,
    *,
    lr: float,
    batch_size: int,
    seed: int = 0,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Adam on ``loss_fn`` with the patch interval warm-up of ``sched``; trains in place."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    net = BoundedNetwork(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = x.shape[0]
    steps = (n + batch_size - 1) // batch_size
    logs: list[EpochLog] = []
    model.train()
    for epoch in range(sched.epochs):
        for group in opt.param_groups:
            group["lr"] = lr * sched.lr_factor(epoch)
        perm = torch.randperm(n, generator=gen).to(x.device)
        start, total, scale = time.perf_counter(), 0.0, 0.0
        for step in range(steps):
            idx = perm[step * batch_size : (step + 1) * batch_size]
            scale = sched.scale(epoch, step, steps)
            loss = loss_fn(net, x[idx], y[idx], scale, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * idx.numel()
        lr_now = opt.param_groups[0]["lr"]
        logs.append(EpochLog(epoch, total / n, scale, lr_now, time.perf_counter() - start))
        if on_epoch is not None:
            on_epoch(logs[-1])
    model.eval()
    return logs
