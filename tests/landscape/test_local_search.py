import math

import torch

from threatlang.backends.landscape.config import GreedyConfig, PatternSearchConfig
from threatlang.backends.landscape.greedy import random_greedy
from threatlang.backends.landscape.levels import below, windows_from_edges
from threatlang.backends.landscape.local_search import SearchSchedule, local_search
from threatlang.backends.landscape.losses import LossKind
from threatlang.backends.landscape.pattern_search import CoordinateSteps, pattern_search


def _objective(fm, theta, x, y, kind):
    from threatlang.backends.landscape.guess_check import score

    return float(score(fm, theta[None], x, y, kind)[0])


def test_pattern_search_never_accepts_a_loss_raising_step(blobs, small_model):
    x, y = blobs
    for kind in LossKind:
        theta0 = small_model.default_init(torch.Generator().manual_seed(1))
        cfg = PatternSearchConfig(max_evaluations=3000, objective=kind)
        res = pattern_search(
            small_model,
            x,
            y,
            theta0,
            windows_from_edges((0.3, 0.33)),
            cfg,
            torch.Generator().manual_seed(2),
        )
        steps = res.accepted_losses
        assert len(steps) > 3
        assert all(b < a for a, b in zip(steps, steps[1:], strict=False))
        assert math.isclose(_objective(small_model, res.theta, x, y, kind), steps[-1], rel_tol=1e-5)
        # every accepted move was one coordinate by +-step/2^k
        moved = (res.theta - theta0).abs()
        assert bool(((moved == 0) | (moved > 1e-6)).all())


def test_pattern_search_stops_at_full_training_accuracy(blobs, small_model):
    x, y = blobs
    theta0 = small_model.default_init(torch.Generator().manual_seed(4))
    res = pattern_search(
        small_model,
        x,
        y,
        theta0,
        (below(math.inf),),
        PatternSearchConfig(),
        torch.Generator().manual_seed(0),
    )
    assert res.hits[0] is not None and res.hits[0].accuracy == 1.0
    assert res.hits[0].cost == res.evaluations


def test_speculative_batches_match_the_sequential_algorithm(blobs, small_model):
    x, y = blobs
    theta0 = small_model.default_init(torch.Generator().manual_seed(7))
    windows = windows_from_edges((0.3, 0.34, 0.4))
    results = []
    for max_batch in (1, 64):
        sched = SearchSchedule(
            scale=1.0,
            shrink=2.0,
            patience=small_model.num_params,
            max_evaluations=800,
            max_batch=max_batch,
        )
        stream = CoordinateSteps(small_model.num_params, torch.Generator().manual_seed(3))
        results.append(local_search(small_model, x, y, theta0, stream, sched, windows))
    one, many = results
    assert one.evaluations == many.evaluations
    assert one.accepted_losses == many.accepted_losses
    assert torch.equal(one.theta, many.theta)


def test_greedy_is_monotone_reproducible_and_shrinks_sigma(blobs, small_model):
    x, y = blobs
    theta0 = small_model.default_init(torch.Generator().manual_seed(0))
    cfg = GreedyConfig(patience=50, max_evaluations=1500)

    def run():
        return random_greedy(
            small_model,
            x,
            y,
            theta0,
            windows_from_edges((0.3, 0.314)),
            cfg,
            torch.Generator().manual_seed(9),
        )

    a, b = run(), run()
    assert a.accepted_losses == b.accepted_losses and torch.equal(a.theta, b.theta)
    assert all(q < p for p, q in zip(a.accepted_losses, a.accepted_losses[1:], strict=False))
    assert a.final_scale < cfg.sigma


def test_by_default_local_search_accepts_only_training_loss_decreases(blobs, small_model):
    """The chapter's rule: a step is kept when the training cross-entropy falls (§7.4.1.2)."""
    x, y = blobs
    for search, cfg in (
        (pattern_search, PatternSearchConfig(max_evaluations=2000)),
        (random_greedy, GreedyConfig(patience=40, max_evaluations=2000)),
    ):
        assert cfg.objective is LossKind.TRAINING
        theta0 = small_model.default_init(torch.Generator().manual_seed(3))
        res = search(small_model, x, y, theta0, windows_from_edges((0.3, 0.31)), cfg,
                     torch.Generator().manual_seed(4))  # fmt: skip
        raw = res.accepted_losses
        assert len(raw) > 3 and all(b < a for a, b in zip(raw, raw[1:], strict=False))
        final = _objective(small_model, res.theta, x, y, LossKind.TRAINING)
        assert math.isclose(final, raw[-1], rel_tol=1e-5)


def test_coordinate_passes_visit_every_parameter_once_with_unit_signed_steps():
    dim = 600  # more than one 256-row chunk per pass
    stream = CoordinateSteps(dim, torch.Generator().manual_seed(0))
    first = torch.cat([stream.take(100), stream.take(500)])
    assert bool((first.abs().sum(1) == 1).all())
    assert sorted(first.abs().argmax(1).tolist()) == list(range(dim))
    second = stream.take(dim)
    assert not torch.equal(second.abs().argmax(1), first.abs().argmax(1))
