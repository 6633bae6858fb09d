"""Watermark removal attacks (§5.3.1, §5.4.4) and PGD in parameter space (Table 5.1).

Removal attacks start from a copy of the watermarked model and train it with Adam on the
attacker's own data: fine-tuning on true labels, or distillation on the watermarked model's hard
(argmax) or soft (probability) labels. Parameter regularisation, as in Shafieinejad et al.
[115] and the reference code, is weight decay during the first ``reg_epochs`` epochs, then off.
Each epoch logs the black-box trigger accuracy (plain model), the white-box one (median of the
accuracies under parameter noise σ), the test accuracy and the l2 distance moved (Tables 5.4-5.6).

``parameter_pgd`` is the ε-bounded l2 adversary on θ itself: normalised-gradient ascent on the
loss, projected onto ‖δ‖₂ ≤ ε; with ``noise_samples > 0`` it attacks the smoothed model
(expectation over parameter noise), which is what the certificate speaks about.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .certify import median_of, median_upper_bound
from .config import NoiseStrategy, RemovalKind
from .param_noise import (
    Params,
    accuracy_under_noise,
    detached_params,
    l2_distance,
    noisy_logits,
    plain_accuracy,
    sample_noise,
)

Arrays = tuple[torch.Tensor, torch.Tensor]


@attrs.frozen
class RemovalConfig:
    kind: RemovalKind = RemovalKind.FINETUNE
    lr: float = attrs.field(default=1e-3, validator=attrs.validators.gt(0))
    epochs: int = attrs.field(default=5, validator=attrs.validators.gt(0))
    batch_size: int = attrs.field(default=64, validator=attrs.validators.gt(0))
    regularization: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    reg_epochs: int = attrs.field(default=1, validator=attrs.validators.ge(0))


@attrs.frozen
class AttackEpoch:
    """Epoch 0 is the model before the attack."""

    epoch: int
    trigger_plain: float
    trigger_smoothed: float
    test_accuracy: float
    l2_distance: float
    #: upper confidence bound on the smoothed (median) trigger accuracy (None: too few draws)
    trigger_smoothed_upper: float | None = None


@attrs.frozen
class SmoothedProbe:
    """How the white-box (smoothed) trigger accuracy is measured after each epoch."""

    sigma: float
    samples: int = 100
    chunk: int = 32
    strategy: NoiseStrategy = NoiseStrategy.LOOP
    confidence: float = 0.999  # of the upper bound on the smoothed accuracy


def _measure(
    module: nn.Module, origin: Params, trigger: Arrays, test: Arrays, probe: SmoothedProbe,
    generator: torch.Generator, epoch: int,
) -> AttackEpoch:  # fmt: skip
    module.eval()
    params = detached_params(module)
    noisy = accuracy_under_noise(
        module, params, *trigger, probe.sigma, probe.samples, generator, probe.chunk,
        probe.strategy,
    )  # fmt: skip
    draws = noisy.cpu().numpy()
    return AttackEpoch(
        epoch=epoch,
        trigger_plain=plain_accuracy(module, params, *trigger),
        trigger_smoothed=median_of(np.sort(draws)),
        test_accuracy=plain_accuracy(module, params, *test),
        l2_distance=l2_distance(params, origin),
        trigger_smoothed_upper=median_upper_bound(draws, probe.confidence),
    )


def _targets(teacher: nn.Module, data: Arrays, kind: RemovalKind, batch: int) -> torch.Tensor:
    if kind is RemovalKind.FINETUNE:
        return data[1]
    teacher.eval()
    with torch.no_grad():
        logits = torch.cat([teacher(data[0][i : i + batch]) for i in range(0, len(data[0]), batch)])
    return logits.argmax(-1) if kind is RemovalKind.DISTILL_HARD else logits.softmax(-1)


def removal_attack(
    module: nn.Module,
    attacker: Arrays,
    trigger: Arrays,
    test: Arrays,
    config: RemovalConfig,
    probe: SmoothedProbe,
    generator: torch.Generator,
    on_epoch: Callable[[AttackEpoch], None] | None = None,
) -> list[AttackEpoch]:
    """Attack a copy of ``module`` (the original is left untouched); per-epoch measurements."""
    stolen = copy.deepcopy(module)
    origin = detached_params(module)
    targets = _targets(module, attacker, config.kind, 512)
    optimizer = torch.optim.Adam(
        stolen.parameters(), lr=config.lr, weight_decay=config.regularization
    )
    history = [_measure(stolen, origin, trigger, test, probe, generator, 0)]
    for epoch in range(1, config.epochs + 1):
        if epoch > config.reg_epochs:
            for group in optimizer.param_groups:
                group["weight_decay"] = 0.0
        stolen.train()
        order = torch.randperm(len(attacker[0]), generator=generator, device=generator.device)
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(stolen(attacker[0][idx]), targets[idx])
            loss.backward()
            optimizer.step()
        history.append(_measure(stolen, origin, trigger, test, probe, generator, epoch))
        if on_epoch is not None:
            on_epoch(history[-1])
    return history


@attrs.frozen
class ParameterPGDConfig:
    steps: int = attrs.field(default=40, validator=attrs.validators.gt(0))
    step_size: float | None = None  # default 2.5·ε / steps
    noise_samples: int = attrs.field(default=0, validator=attrs.validators.ge(0))
    sigma: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    strategy: NoiseStrategy = NoiseStrategy.LOOP
    restarts: int = attrs.field(default=1, validator=attrs.validators.gt(0))


#: how far inside the ball a projected step lands (relative): the certificate covers the OPEN
#: ball ‖δ‖₂ < ε, and a float32 projection onto the closed ball can land just outside it
#: (0.300000016 at ε = 0.3)
INSIDE = 1e-6


def _norm(delta: Params) -> float:
    return sum(float(d.double().pow(2).sum()) for d in delta.values()) ** 0.5


def _project(delta: Params, eps: float) -> Params:
    """δ unchanged when ‖δ‖₂ < ε(1 − INSIDE), else scaled to that norm; measured in float64
    on the float32 tensors, so the result is strictly inside the open ball."""
    target = eps * (1 - INSIDE)
    out = delta
    for _ in range(8):  # one pass is enough unless float32 rounding pushes it back out
        norm = _norm(out)
        if norm <= target or (out is not delta and norm < eps):
            return out
        out = {k: d * (target / norm) for k, d in out.items()}
        target *= 1 - INSIDE
    raise ArithmeticError(f"cannot project a step of norm {_norm(delta):g} inside radius {eps:g}")


def _moved(params: Params, delta: Params, eps: float) -> Params:
    """θ + δ strictly inside the open ball: the float32 sum can round away from θ, so the
    distance is measured on the moved parameters themselves and δ shrunk until it holds."""
    for _ in range(8):
        moved = {k: params[k] + delta[k] for k in params}
        if l2_distance(moved, params) < eps:
            return moved
        delta = _project({k: d * (1 - 4 * INSIDE) for k, d in delta.items()}, eps)
    raise ArithmeticError(f"cannot place the parameters strictly inside radius {eps:g}")


def _smoothed_loss(module, params, delta, x, y, config, generator) -> torch.Tensor:
    """Cross-entropy at θ + δ (+ G, averaged over ``noise_samples`` draws when smoothing)."""
    draws = max(config.noise_samples, 1)
    sigmas = torch.full((draws,), config.sigma if config.noise_samples else 0.0)
    noise = sample_noise(params, sigmas.to(x.device), generator)
    moved = {k: params[k] + delta[k] for k in params}
    logits = noisy_logits(module, moved, noise, x, config.strategy)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.repeat(draws))


def _random_start(params: Params, eps: float, generator: torch.Generator) -> Params:
    delta = {
        k: torch.randn(p.shape, generator=generator, device=p.device, dtype=p.dtype)
        for k, p in params.items()
    }
    radius = eps * float(torch.rand((), generator=generator, device=generator.device))
    return _project({k: d * (radius / _norm(delta)) for k, d in delta.items()}, eps)


def parameter_pgd(
    module: nn.Module,
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    config: ParameterPGDConfig,
    generator: torch.Generator,
) -> Params:
    """An l2 perturbation δ of the parameters, ‖δ‖₂ < ε, that raises the loss on (x, y).

    The first restart starts at δ = 0, later ones at random points of the ball; the δ with the
    highest final loss wins. Returns θ + δ (new tensors; ``module`` and ``params`` untouched),
    strictly inside the open ball the certificate covers, in the parameters' own precision.
    """
    module.eval()
    alpha = config.step_size if config.step_size is not None else 2.5 * eps / config.steps
    best = {k: torch.zeros_like(p) for k, p in params.items()}  # δ = 0 unless a restart wins
    best_loss = -float("inf")
    for restart in range(config.restarts):
        delta = (
            {k: torch.zeros_like(p) for k, p in params.items()}
            if restart == 0
            else _random_start(params, eps, generator)
        )
        for _ in range(config.steps):
            delta = {k: d.detach().requires_grad_(True) for k, d in delta.items()}
            loss = _smoothed_loss(module, params, delta, x, y, config, generator)
            grads = torch.autograd.grad(loss, list(delta.values()))
            gnorm = sum(float(g.pow(2).sum()) for g in grads) ** 0.5
            if gnorm == 0 or not math.isfinite(gnorm):  # flat, or numerical trouble: stop
                break
            step = {
                k: d.detach() + alpha * g / gnorm
                for (k, d), g in zip(delta.items(), grads, strict=True)
            }
            delta = _project(step, eps)
        delta = {k: d.detach() for k, d in delta.items()}
        if config.restarts == 1:
            best = delta
            break
        with torch.no_grad():
            final = float(_smoothed_loss(module, params, delta, x, y, config, generator))
        if final > best_loss:
            best, best_loss = delta, final
    return _moved(params, best, eps)


@attrs.frozen
class PGDResult:
    """The ε-adversary at one radius: where PGD on the smoothed trigger loss got to."""

    radius: float
    distance: float  # ‖δ‖₂ actually used (≤ radius)
    trigger_plain: float  # black-box trigger accuracy of θ + δ
    smoothed_median: float  # median trigger accuracy under noise at θ + δ
    smoothed_upper: float | None  # upper confidence bound on h_50%(θ + δ)
    worst_test_accuracy: float  # test accuracy after PGD on the test loss within ε (Table 5.1)


def pgd_at_radius(
    module: nn.Module,
    trigger: Arrays,
    test: Arrays,
    radius: float,
    sigma: float,
    samples: int,
    confidence: float,
    config: ParameterPGDConfig,
    test_examples: int,
    generator: torch.Generator,
) -> PGDResult:
    """Attack the smoothed trigger accuracy inside the ball, then re-estimate it with fresh noise.

    The certificate claims h_50%(θ + δ) ≥ the certified bound; ``smoothed_upper`` bounds the
    attacked model's h_50% from above, so ``smoothed_upper < bound`` would refute it (with
    probability at most 2·(1 − confidence) of a false alarm).
    """
    params = detached_params(module)
    attacked = parameter_pgd(module, params, *trigger, radius, config, generator)
    noisy = accuracy_under_noise(
        module, attacked, *trigger, sigma, samples, generator, strategy=config.strategy
    ).cpu()
    plain_cfg = attrs.evolve(config, noise_samples=0, sigma=0.0)
    x_test, y_test = test[0][:test_examples], test[1][:test_examples]
    worst = parameter_pgd(module, params, x_test, y_test, radius, plain_cfg, generator)
    return PGDResult(
        radius=float(radius),
        distance=l2_distance(attacked, params),
        trigger_plain=plain_accuracy(module, attacked, *trigger),
        smoothed_median=median_of(np.sort(noisy.numpy())),
        smoothed_upper=median_upper_bound(noisy.numpy(), confidence),
        worst_test_accuracy=plain_accuracy(module, worst, x_test, y_test),
    )
