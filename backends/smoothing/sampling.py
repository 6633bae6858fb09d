"""Batched Monte Carlo for Gaussian smoothing: ``f(x + G_i)``, ``G_i ~ N(0, sigma^2 I)``.

No global RNG: every draw comes from the caller's ``torch.Generator``, which must live on
``device`` (``torch.Generator(device=device).manual_seed(seed)``).  Noise is drawn one batch at a
time so memory stays bounded by ``batch_size`` whatever ``n`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch

__all__ = ["make_generator", "monte_carlo", "noise_batches"]


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A generator on ``device`` seeded with ``seed`` (the only RNG this backend uses)."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def noise_batches(
    x: torch.Tensor,
    sigma: float,
    n: int,
    batch_size: int,
    generator: torch.Generator,
) -> Iterator[torch.Tensor]:
    """Yield ``x + G`` in batches, shape ``(b, *x.shape)``, ``b <= batch_size``, ``n`` in total.

    One buffer is reused for every batch (a fresh multi-megabyte tensor per batch costs page
    faults comparable to a small model's forward pass), so a yielded batch is only valid until
    the next one is requested: consume it, do not keep it.
    """
    if n < 1 or batch_size < 1:
        raise ValueError(f"need n >= 1 and batch_size >= 1, got n={n}, batch_size={batch_size}")
    buffer = torch.empty((min(batch_size, n), *x.shape), device=x.device, dtype=x.dtype)
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        noise = buffer[:b]
        torch.randn(noise.shape, generator=generator, out=noise)
        yield torch.add(x, noise, alpha=sigma, out=noise)  # one fused pass, in place
        done += b


@torch.no_grad()
def monte_carlo(
    f: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    sigma: float,
    n: int,
    generator: torch.Generator,
    batch_size: int = 256,
) -> torch.Tensor:
    """Evaluate ``f`` on ``n`` noisy copies of one input ``x``; returns ``(n, *f_out_shape)``.

    ``f`` maps a batch ``(b, *x.shape)`` to ``(b, ...)``.  ``x`` must already be on the
    generator's device.
    """
    outs = []
    for batch in noise_batches(x, sigma, n, batch_size, generator):
        out = f(batch)
        if out.untyped_storage().data_ptr() == batch.untyped_storage().data_ptr():
            out = out.clone()  # f returned (a view of) the reused noise buffer
        outs.append(out)
    return torch.cat(outs, dim=0)
