"""Sparsemax against a brute-force projection onto the simplex, and its gradient."""

import itertools

import numpy as np
import pytest
import torch

from threatlang.backends.mip.sparsemax import sparsemax, sparsemax_threshold


def brute_force_projection(x: np.ndarray) -> np.ndarray:
    """Euclidean projection by trying every support: on support S, z = x - (sum x_S - 1)/|S|."""
    best, best_dist = None, np.inf
    n = len(x)
    for size in range(1, n + 1):
        for support in itertools.combinations(range(n), size):
            s = list(support)
            tau = (x[s].sum() - 1.0) / size
            z = np.zeros(n)
            z[s] = x[s] - tau
            if (z >= -1e-12).all():
                dist = ((z - x) ** 2).sum()
                if dist < best_dist:
                    best, best_dist = z, dist
    return best


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_matches_brute_force(n: int) -> None:
    gen = np.random.default_rng(n)
    for _ in range(200):
        x = gen.normal(scale=gen.choice([0.1, 1.0, 5.0]), size=n)
        got = sparsemax(torch.tensor(x)).numpy()
        np.testing.assert_allclose(got, brute_force_projection(x), atol=1e-10)


def test_batched_any_dim_and_threshold() -> None:
    x = torch.randn(4, 3, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = sparsemax(x, dim=1)
    torch.testing.assert_close(out.sum(dim=1), torch.ones(4, 6, dtype=torch.float64))
    for i in range(4):
        for j in range(6):
            ref = brute_force_projection(x[i, :, j].numpy())
            np.testing.assert_allclose(out[i, :, j].numpy(), ref, atol=1e-10)
    tau = sparsemax_threshold(x, dim=1)
    torch.testing.assert_close(out, torch.clamp(x - tau, min=0))


def test_gradient_matches_finite_differences() -> None:
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: sparsemax(t, -1), (x,))


def test_gradient_formula_on_support() -> None:
    x = torch.tensor([1.0, 0.8, -2.0], dtype=torch.float64, requires_grad=True)
    out = sparsemax(x)
    out[0].backward()
    # support {0, 1}: d z0 / dx = (1 - 1/2, -1/2, 0)
    torch.testing.assert_close(x.grad, torch.tensor([0.5, -0.5, 0.0], dtype=torch.float64))
