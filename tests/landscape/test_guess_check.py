import math

import pytest
import torch

from threatlang.backends.landscape.config import GuessCheckConfig
from threatlang.backends.landscape.guess_check import guess_and_check, score
from threatlang.backends.landscape.levels import LossWindow, below, windows_from_edges
from threatlang.backends.landscape.losses import LossKind


@pytest.mark.parametrize(
    ("kind", "threshold", "rejected_for"),
    [(LossKind.NORMALISED, 0.36, "loss"), (LossKind.TRAINING, 0.6, "accuracy")],
)
def test_accepts_only_the_first_model_meeting_both_conditions(
    blobs, small_model, kind, threshold, rejected_for
):
    x, y = blobs
    cfg = GuessCheckConfig(batch=64, max_guesses=20_000, loss_kind=kind)
    res = guess_and_check(
        small_model, x, y, (below(threshold),), cfg, torch.Generator().manual_seed(1)
    )
    hit = res.hits[0]
    assert hit is not None
    loss, acc = score(small_model, hit.theta[None], x, y, kind)
    assert float(acc) == 1.0 and float(loss) < threshold
    # Replay the same stream: every earlier guess fails at least one condition ...
    g = torch.Generator().manual_seed(1)
    batches = math.ceil(hit.cost / cfg.batch)
    stream = torch.cat(
        [small_model.sample_uniform(cfg.batch, cfg.bound, g) for _ in range(batches)]
    )
    assert torch.equal(stream[hit.cost - 1], hit.theta)
    loss, acc = score(small_model, stream[: hit.cost - 1], x, y, kind)
    assert not bool(((acc >= 1.0) & (loss < threshold)).any())
    # ... and some were turned away although they met the other condition.
    if rejected_for == "loss":
        assert bool((acc >= 1.0).any())
    else:
        assert bool((loss < threshold).any())
    assert hit.volume == 1.0 / hit.cost


def test_windows_are_filled_with_losses_inside_them(blobs, small_model):
    x, y = blobs
    windows = windows_from_edges((0.32, 0.4, 0.5, 0.6))
    res = guess_and_check(
        small_model, x, y, windows, GuessCheckConfig(batch=256), torch.Generator().manual_seed(0)
    )
    for w, hit in zip(windows, res.hits, strict=True):
        assert hit is not None and hit.loss in w and hit.accuracy == 1.0


def test_reproducible_from_seed_and_seed_matters(blobs, small_model):
    x, y = blobs
    cfg = GuessCheckConfig(batch=128)

    def run(s):
        return guess_and_check(
            small_model, x, y, (below(0.5),), cfg, torch.Generator().manual_seed(s)
        )

    a, b, c = run(5), run(5), run(6)
    assert a.hits[0].cost == b.hits[0].cost and torch.equal(a.hits[0].theta, b.hits[0].theta)
    assert not torch.equal(a.hits[0].theta, c.hits[0].theta)


def test_budget_exhaustion_gives_no_model(blobs, small_model):
    x, y = blobs
    flipped = 1 - y
    flipped[0] = y[0]  # a labelling an MLP cannot fit from a handful of guesses
    res = guess_and_check(
        small_model,
        x,
        flipped,
        (below(0.3135),),
        GuessCheckConfig(batch=50, max_guesses=100),
        torch.Generator(),
    )
    assert res.hits == (None,) and res.guesses == 100


def test_window_validation():
    with pytest.raises(ValueError):
        LossWindow(0.5, 0.4)
    with pytest.raises(ValueError):
        windows_from_edges((0.4,))
