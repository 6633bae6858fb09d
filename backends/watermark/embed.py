"""Embedding a certifiable watermark (Algorithm 2) and the baseline watermark of [113].

The certified watermark follows Algorithm 2: each epoch's regular steps train on the training
set X alone, then (after ``warmup_epochs``) come the noisy trigger steps: for each trigger batch
the gradient of the loss at θ + G is averaged over ``replay`` noise levels σ_i = (i / replay)·σ_max
and ``samples`` draws per level, so the trigger labels hold under parameter noise — which is what
the median-smoothed trigger accuracy certified later measures. ``regular_data=TRAIN_AND_TRIGGER``
mixes the trigger set into the regular steps as well (the reference code's variant). The
baseline watermark has no noisy steps, so its regular steps always see X plus the trigger set.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from .config import NoiseStrategy, RegularData, TriggerStep
from .param_noise import detached_params, noisy_logits, plain_accuracy, sample_noise


@attrs.frozen
class EmbedConfig:
    """Training knobs; ``noise=False`` gives the baseline watermark (no noisy trigger steps)."""

    epochs: int = attrs.field(default=20, validator=attrs.validators.gt(0))
    warmup_epochs: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    lr: float = attrs.field(default=0.05, validator=attrs.validators.gt(0))
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_milestones: tuple[int, ...] = attrs.field(default=(), converter=tuple)
    batch_size: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    trigger_batch_size: int = attrs.field(default=32, validator=attrs.validators.gt(0))
    sigma: float = attrs.field(default=0.5, validator=attrs.validators.ge(0))
    replay: int = attrs.field(default=4, validator=attrs.validators.gt(0))
    samples: int = attrs.field(default=8, validator=attrs.validators.gt(0))
    noise: bool = True
    step: TriggerStep = TriggerStep.AVERAGED
    strategy: NoiseStrategy = NoiseStrategy.LOOP
    regular_data: RegularData = RegularData.TRAIN  # Algorithm 2: regular steps on X only

    @property
    def mixes_trigger(self) -> bool:
        """Do the regular steps see the trigger set? (Always for the baseline watermark.)"""
        return not self.noise or self.regular_data is RegularData.TRAIN_AND_TRIGGER


@attrs.frozen
class EpochLog:
    epoch: int
    train_loss: float
    trigger_loss: float
    trigger_accuracy: float
    test_accuracy: float | None


Arrays = tuple[torch.Tensor, torch.Tensor]


def noise_levels(config: EmbedConfig) -> torch.Tensor:
    """σ for every draw of one trigger step: (i / k)·σ_max for i = 1..k, each ``samples`` times."""
    levels = torch.arange(1, config.replay + 1, dtype=torch.float32) / config.replay
    return (levels * config.sigma).repeat_interleave(config.samples)


def noisy_trigger_loss(
    module: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    sigmas: torch.Tensor,
    generator: torch.Generator,
    strategy: NoiseStrategy,
) -> float:
    """Accumulate ∇θ of the mean over draws of l(x, y, θ + G) into ``.grad``; return the loss."""
    live = dict(module.named_parameters())
    noise = sample_noise(detached_params(module), sigmas.to(x.device), generator)
    n = sigmas.shape[0]
    if strategy is NoiseStrategy.VMAP:
        logits = noisy_logits(module, live, noise, x, strategy)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(n))
        loss.backward()
        return float(loss.detach())
    total = 0.0
    for i in range(n):  # one graph at a time keeps memory flat
        draw = {k: v[i : i + 1] for k, v in noise.items()}
        logits = noisy_logits(module, live, draw, x, strategy)[0]
        loss = F.cross_entropy(logits, y) / n
        loss.backward()
        total += float(loss.detach())
    return total


def _batches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator, device=generator.device)
    return [order[i : i + size] for i in range(0, n, size)]


def embed_watermark(
    module: nn.Module,
    train: Arrays,
    trigger: Arrays,
    config: EmbedConfig,
    generator: torch.Generator,
    test: Arrays | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
) -> list[EpochLog]:
    """Train ``module`` (in place: it is the model being built) and return per-epoch logs.

    ``generator`` drives shuffling and parameter noise; tensors must already be on the module's
    device, and the generator on that device too.
    """
    optimizer = torch.optim.SGD(
        module.parameters(), lr=config.lr, momentum=config.momentum,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_milestones), 0.1)
    mixed_x, mixed_y = train
    if config.mixes_trigger:
        mixed_x = torch.cat([train[0], trigger[0]])
        mixed_y = torch.cat([train[1], trigger[1]])
    sigmas = noise_levels(config)
    logs: list[EpochLog] = []
    for epoch in range(config.epochs):
        module.train()
        train_loss = 0.0
        batches = _batches(len(mixed_x), config.batch_size, generator)
        for idx in batches:
            optimizer.zero_grad()
            loss = F.cross_entropy(module(mixed_x[idx]), mixed_y[idx])
            loss.backward()
            optimizer.step()
            train_loss += float(loss.detach()) / len(batches)
        trigger_loss = 0.0
        if config.noise and epoch >= config.warmup_epochs:
            groups = [sigmas]
            if config.step is TriggerStep.PER_LEVEL:
                groups = list(sigmas.split(config.samples))
            for idx in _batches(len(trigger[0]), config.trigger_batch_size, generator):
                for group in groups:
                    optimizer.zero_grad()
                    trigger_loss = noisy_trigger_loss(
                        module, trigger[0][idx], trigger[1][idx], group, generator,
                        config.strategy,
                    )  # fmt: skip
                    optimizer.step()
        scheduler.step()
        module.eval()
        params = detached_params(module)
        log = EpochLog(
            epoch=epoch,
            train_loss=train_loss,
            trigger_loss=trigger_loss,
            trigger_accuracy=plain_accuracy(module, params, *trigger),
            test_accuracy=None if test is None else plain_accuracy(module, params, *test),
        )
        logs.append(log)
        if on_epoch is not None:
            on_epoch(log)
    module.eval()
    return logs
