"""Certificate training (§2.4.2): cross-entropy on the negated worst-case margin bounds (2.12).

``ALL_PATCH`` bounds every placement; ``RANDOM`` bounds ``k`` placements drawn per image and
step (2.13, 2.14); ``STANDARD`` is plain training, the baseline. The margin matrix is merged
into the last layer (elision) and the patch interval grows by the §2.7.1 warm-up.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threatlang.bounds.engine import BoundedNetwork

from .margins import patch_margins, use_local, worst_margins, worst_margins_sparse
from .patches import PatchThreat, placements
from .schedule import Schedule


class Strategy(enum.Enum):
    STANDARD = "standard"
    ALL_PATCH = "all_patch"
    RANDOM = "random"


@attrs.frozen
class TrainConfig:
    strategy: Strategy = Strategy.ALL_PATCH
    k: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    epochs: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    lr: float = attrs.field(default=5e-4, validator=attrs.validators.gt(0.0))
    batch_size: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    warmup_epochs: int | None = None  # None: §2.7.1's 61% of the epochs
    halve_every: int | None = None  # None: §2.7.1's 10% of the epochs
    plain_epochs: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    # weight of the natural loss after the warm-up (Gowal et al.'s kappa: it starts at 1 and
    # falls linearly with the patch size); None, as in the chapter, trains on the bound alone.
    natural: float | None = attrs.field(
        default=None,
        validator=attrs.validators.optional([attrs.validators.ge(0.0), attrs.validators.le(1.0)]),
    )
    chunk: int = attrs.field(default=1024, validator=attrs.validators.ge(1))
    sparse_grad: bool = True  # all-patch: backward through the attaining placements only


@attrs.frozen
class EpochLog:
    epoch: int
    loss: float
    scale: float
    lr: float
    seconds: float


def random_offsets(offs: Tensor, batch: int, k: int, gen: torch.Generator) -> Tensor:
    """``(B, k, 2)``: ``k`` placements per image drawn with replacement from ``offs``."""
    idx = torch.randint(0, offs.shape[0], (batch, k), generator=gen, device=gen.device)
    return offs[idx.to(offs.device)]


def certificate_loss(
    net: BoundedNetwork,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    cfg: TrainConfig,
    scale: float,
    gen: torch.Generator,
) -> Tensor:
    """Cross entropy of ``-m`` where ``m`` lower-bounds the margins over the sampled placements."""
    if cfg.strategy == Strategy.ALL_PATCH:
        if cfg.sparse_grad:
            m = worst_margins_sparse(net, x, y, threat, chunk=cfg.chunk, scale=scale)
        else:
            m = worst_margins(net, x, y, threat, chunk=cfg.chunk, scale=scale).margins
    else:
        parts = []
        for mask, offs in placements(threat, tuple(x.shape[-2:]), x.device):
            sample = random_offsets(offs, x.shape[0], cfg.k, gen)
            local = use_local(tuple(x.shape[-2:]))
            m_s = patch_margins(
                net, x, y, mask, sample, threat.low, threat.high, scale=scale, local=local
            )
            parts.append(m_s.amin(1))
        m = torch.stack(parts).amin(0)
    return F.cross_entropy(-m, y)


def train(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    threat: PatchThreat,
    cfg: TrainConfig,
    *,
    seed: int = 0,
    gen: torch.Generator | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
    loss_fn: Callable[..., Tensor] | None = None,
) -> list[EpochLog]:
    """Train ``model`` in place on tensors already on its device; returns per-epoch logs.
    ``loss_fn(net, x, y, scale, gen)`` replaces the certificate loss (guided, pooled). Batch
    order and sampled placements come from ``gen`` (a run's `train` stream), or from a CPU
    generator seeded with ``seed`` when none is given (library use)."""
    device = x.device
    if gen is None:
        gen = torch.Generator(device="cpu").manual_seed(seed)
    net = None if cfg.strategy == Strategy.STANDARD else BoundedNetwork(model, x[:2])
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    default = Schedule.chapter(cfg.epochs)
    sched = Schedule(
        cfg.epochs,
        default.warmup_epochs if cfg.warmup_epochs is None else cfg.warmup_epochs,
        default.halve_every if cfg.halve_every is None else cfg.halve_every,
        cfg.plain_epochs,
    )
    n = x.shape[0]
    steps = (n + cfg.batch_size - 1) // cfg.batch_size
    logs = []
    model.train()
    for epoch in range(cfg.epochs):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * sched.lr_factor(epoch)
        perm = torch.randperm(n, generator=gen, device=gen.device).to(device)
        start, total, scale = time.perf_counter(), 0.0, 0.0
        for step in range(steps):
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            xb, yb = x[idx], y[idx]
            if cfg.strategy == Strategy.STANDARD:
                loss = F.cross_entropy(model(xb), yb)
            else:
                scale = sched.scale(epoch, step, steps)
                if loss_fn is not None:
                    loss = loss_fn(net, xb, yb, scale, gen)
                else:
                    loss = certificate_loss(net, xb, yb, threat, cfg, scale, gen)
                if cfg.natural is not None:
                    kappa = 1.0 - (1.0 - cfg.natural) * scale
                    loss = kappa * F.cross_entropy(model(xb), yb) + (1 - kappa) * loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * xb.shape[0]
        log = EpochLog(
            epoch, total / n, scale, opt.param_groups[0]["lr"], time.perf_counter() - start
        )
        logs.append(log)
        if on_epoch is not None:
            on_epoch(log)
    model.eval()
    return logs
