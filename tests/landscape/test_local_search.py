import math

import torch

from threatlang.backends.landscape.greedy import GreedyConfig, random_greedy
from threatlang.backends.landscape.levels import below, windows_from_edges
from threatlang.backends.landscape.local_search import SearchSchedule, local_search
from threatlang.backends.landscape.losses import LossKind
from threatlang.backends.landscape.pattern_search import (
    CoordinateSteps,
    PatternSearchConfig,
    pattern_search,
)


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
