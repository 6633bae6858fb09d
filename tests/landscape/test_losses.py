import math

import torch
import torch.nn.functional as F

from threatlang.backends.landscape.losses import (
    LossKind,
    accuracy,
    cross_entropy,
    normalise_logits,
    training_loss,
)


def test_normalised_loss_is_scale_invariant_and_raw_is_not():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 10, 2, generator=g)
    y = torch.randint(0, 2, (10,), generator=g)
    for kind, invariant in ((LossKind.NORMALISED, True), (LossKind.TRAINING, False)):
        a, b = training_loss(logits, y, kind), training_loss(7.0 * logits, y, kind)
        assert torch.allclose(a, b, atol=1e-5) is invariant


def test_normalised_two_class_loss_floor_is_equal_margins():
    y = torch.tensor([0, 1, 1, 0])
    equal = torch.stack([-(2 * y - 1.0), 2 * y - 1.0], dim=-1)[None] * 3.0
    assert math.isclose(
        float(training_loss(equal, y, LossKind.NORMALISED)), math.log1p(math.exp(-1)), rel_tol=1e-5
    )
    uneven = equal * torch.tensor([1.0, 2.0, 0.5, 3.0])[None, :, None]
    assert float(training_loss(uneven, y, LossKind.NORMALISED)) > math.log1p(math.exp(-1))


def test_cross_entropy_matches_torch_per_model():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 6, 3, generator=g)
    y = torch.randint(0, 3, (6,), generator=g)
    expected = torch.stack([F.cross_entropy(z, y) for z in logits])
    assert torch.allclose(cross_entropy(logits, y), expected, atol=1e-6)
    assert torch.allclose(normalise_logits(torch.zeros(1, 6, 3)), torch.zeros(1, 6, 3))


def test_accuracy_counts_ties_as_wrong():
    logits = torch.tensor([[[1.0, 1.0], [0.0, 2.0]]])
    assert float(accuracy(logits, torch.tensor([0, 1]))) == 0.5
