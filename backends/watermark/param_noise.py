"""Batched Gaussian noise on the parameters of a model, evaluated without touching the model.

Smoothing over parameters (§5.3.2) evaluates f(θ + G) for many draws G ~ N(0, σ²I). The
reference code adds noise to ``param.data`` in place, runs the model, and subtracts it again —
one draw at a time, with the model left corrupted if anything raises. Here the module is called
functionally (``torch.func.functional_call``) on θ + G, and ``torch.func.vmap`` maps over a chunk
of draws at once; the module's own tensors are never written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch
from torch import nn
from torch.func import functional_call, vmap

from .config import NoiseStrategy

Params = dict[str, torch.Tensor]


def detached_params(module: nn.Module) -> Params:
    """A copy of the module's parameters, detached: the θ that noise is added to."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def param_count(params: Mapping[str, torch.Tensor]) -> int:
    return sum(int(t.numel()) for t in params.values())


def l2_distance(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> float:
    """‖a − b‖₂ over all parameters jointly (the norm the certificate's ε is measured in),
    accumulated in float64 so no rounding hides a step outside the ball."""
    total = sum(float((a[k].detach().double() - b[k].detach().double()).pow(2).sum()) for k in a)
    return total**0.5


def sample_noise(
    params: Mapping[str, torch.Tensor], sigmas: torch.Tensor, generator: torch.Generator
) -> Params:
    """One draw G_i ~ N(0, sigmas[i]² I) per entry of ``sigmas``; each value has shape (n, *p)."""
    n = sigmas.shape[0]
    out: Params = {}
    for name, p in params.items():
        g = torch.randn((n, *p.shape), generator=generator, device=p.device, dtype=p.dtype)
        out[name] = g * sigmas.to(p).view(n, *([1] * p.dim()))
    return out


def _forward(
    module: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor
) -> torch.Tensor:
    buffers = dict(module.named_buffers())
    return functional_call(module, ({**buffers, **params}), (x,))


def stacked_logits(
    module: nn.Module,
    stacked: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    strategy: NoiseStrategy = NoiseStrategy.VMAP,
) -> torch.Tensor:
    """Logits (n, N, classes) of the module at each of n parameter sets stacked along dim 0."""
    if strategy is NoiseStrategy.VMAP:
        try:
            return vmap(lambda draw: _forward(module, draw, x))(dict(stacked))
        except RuntimeError as err:  # an op without a batching rule (e.g. group norm backward)
            if "vmap" not in str(err):
                raise
    n = next(iter(stacked.values())).shape[0]
    return torch.stack(
        [_forward(module, {k: v[i] for k, v in stacked.items()}, x) for i in range(n)]
    )


def noisy_logits(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    noise: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    strategy: NoiseStrategy = NoiseStrategy.VMAP,
) -> torch.Tensor:
    """Logits (n, N, classes) of the module at θ + G_i on inputs ``x`` for each of n draws.

    Differentiable in ``params`` (gradients of f(θ + G) w.r.t. θ): the noisy trigger steps of
    Algorithm 2 and the parameter-space PGD on the smoothed model use it.
    """
    return stacked_logits(module, {k: params[k] + noise[k] for k in params}, x, strategy)


def perturbed_params(
    params: Mapping[str, torch.Tensor], sigma: float, n: int, generator: torch.Generator
) -> Params:
    """θ + G_i for n draws, G_i ~ N(0, σ² I), each tensor (n, *p) filled in one fused pass.

    Drawing straight into the output and adding θ in place costs the random numbers plus one
    pass, where the reference's randn, scale, add and subtract cost the random numbers plus four.
    """
    out: Params = {}
    for name, p in params.items():
        buf = torch.empty((n, *p.shape), dtype=p.dtype, device=p.device)
        if sigma > 0:
            buf.normal_(0.0, float(sigma), generator=generator).add_(p)
        else:
            buf.copy_(p.expand_as(buf))
        out[name] = buf
    return out


def accuracy_under_noise(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    sigma: float,
    n: int,
    generator: torch.Generator,
    chunk: int = 32,
    strategy: NoiseStrategy = NoiseStrategy.VMAP,
) -> torch.Tensor:
    """Trigger-set accuracies f(θ + G_i), i = 1..n, G_i ~ N(0, σ² I): a float tensor (n,).

    The module should be in eval mode (the smoothed function must be a fixed function of θ).
    A draw whose logits are not all finite gives NaN (numerical trouble, never an accuracy:
    the argmax of NaN logits would silently pick class 0).
    """
    out = []
    with torch.no_grad():
        for start in range(0, n, chunk):
            stacked = perturbed_params(params, sigma, min(chunk, n - start), generator)
            logits = stacked_logits(module, stacked, x, strategy)
            acc = (logits.argmax(dim=-1) == y).float().mean(dim=-1)
            finite = torch.isfinite(logits).flatten(1).all(dim=1)
            out.append(torch.where(finite, acc, torch.full_like(acc, float("nan"))))
    return torch.cat(out) if out else torch.empty(0)


def plain_accuracy(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 512,
) -> float:
    """Accuracy of the module at θ itself (the black-box watermark check, or test accuracy)."""
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            logits = _forward(module, params, x[start : start + batch_size])
            correct += int((logits.argmax(-1) == y[start : start + batch_size]).sum())
    return correct / max(len(x), 1)


def _has_batch_stats(module: nn.Module) -> bool:
    """Batch norm in training mode updates running statistics, which vmap cannot do."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training for m in module.modules()
    )


def pick_strategy(
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    chunk: int,
) -> NoiseStrategy:
    """Use vmap where it pays: time one chunk each way and keep the faster.

    On CPU, vmap turns each convolution into a grouped convolution over the chunk, which is often
    slower than a loop of ordinary ones; for linear layers it becomes a batched matmul and wins.
    Models with batch norm in training mode always loop.
    """
    if _has_batch_stats(module):
        return NoiseStrategy.LOOP
    stacked = perturbed_params(params, 0.0, chunk, torch.Generator(x.device))
    timings = {}
    with torch.no_grad():
        for strategy in (NoiseStrategy.VMAP, NoiseStrategy.LOOP):
            stacked_logits(module, stacked, x, strategy)  # warm-up
            start = time.perf_counter()
            stacked_logits(module, stacked, x, strategy)
            timings[strategy] = time.perf_counter() - start
    return min(timings, key=timings.__getitem__)


def resolve_strategy(
    requested: NoiseStrategy,
    module: nn.Module,
    params: Mapping[str, torch.Tensor],
    x: torch.Tensor,
    chunk: int,
) -> NoiseStrategy:
    """``AUTO`` becomes whichever of vmap and loop is faster here; explicit choices stay."""
    if requested is not NoiseStrategy.AUTO:
        return requested
    return pick_strategy(module, params, x, chunk)
