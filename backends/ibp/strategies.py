"""Chapter-2 training strategies beyond all-patch/random: their losses, behind one signature.

A certificate loss here is ``loss(net, x, y, scale, gen) -> Tensor``; guided (§2.4.2) and
pooled (§2.7.3) training plug into :func:`.train.train` through its ``loss_fn`` hook.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from threatlang.backends.choices import Strategy

from .guided import GuidedConfig, GuidedPatchLoss
from .patches import PatchThreat
from .pooling import PoolConfig, PooledPatchLoss

LossFn = Callable[..., Tensor]


def pool_config(blocks: tuple[int, ...]) -> PoolConfig:
    """``pool (b1, b2, ...)``: pool ``b1 x b1`` after layer 1, ``b2 x b2`` after layer 2, ...
    so ``pool 4`` is the chapter's "pool 4" and ``pool (2, 2)`` its "pool 2-2"."""
    return PoolConfig(tuple((i + 1, b) for i, b in enumerate(blocks)))


def strategy_loss(
    strategy: Strategy,
    k: int | None,
    threat: PatchThreat,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    pool: tuple[int, ...] = (2,),
    unet_width: int = 16,
    unet_lr: float = 1e-3,
    temperature: float = 1.0,
    device: torch.device | str = "cpu",
) -> LossFn | None:
    """The loss for guided/pooled strategies; None for those :mod:`.train` handles itself."""
    if strategy == Strategy.GUIDED_PATCH:
        cfg = GuidedConfig(k=k, width=unet_width, lr=unet_lr, temperature=temperature)
        return GuidedPatchLoss(threat, input_shape, num_classes, cfg, device)
    if strategy == Strategy.POOLED_PATCH:
        return PooledPatchLoss(threat, pool_config(pool))
    return None
