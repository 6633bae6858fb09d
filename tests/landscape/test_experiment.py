import math

import numpy as np
import torch

from threatlang.backends.landscape.config import GuessCheckConfig, PatternSearchConfig, SGDConfig
from threatlang.backends.landscape.experiment import run_trial
from threatlang.backends.landscape.levels import windows_from_edges
from threatlang.backends.landscape.loss_bins import (
    Cell,
    TrialOutcome,
    aggregate,
    best_cell,
    matched_best,
    mean_se,
    paired_gaps,
)
from threatlang.backends.landscape.models import FlatModel, mlp
from threatlang.backends.landscape.splits import sample_few_shot, two_class_pool


def _pool():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 1, 2, 2)).astype(np.float32)
    y = (x[:, 0, 0, 0] > 0).astype(np.int64)
    return two_class_pool(x[:80], y[:80], x[80:], y[80:], (0, 1))


def test_trials_are_reproducible_from_the_seed_and_differ_across_seeds():
    pool, fm = _pool(), FlatModel(mlp(4, (6,), 2))
    windows = windows_from_edges((0.32, 0.4, 0.6))
    configs = (
        GuessCheckConfig(max_guesses=3000, batch=500),
        PatternSearchConfig(max_evaluations=500),
        SGDConfig(max_steps=100),
    )

    def run(seed):
        data = sample_few_shot(pool, 8, seed)
        return run_trial(configs, fm, data, windows, 8, 0, seed, "volume/n8/t0")

    a, b, c = run(0), run(0), run(1)
    assert a == b
    assert a != c
    assert [o.optimizer for o in a] == ["guess_and_check", "pattern_search", "sgd"]


def test_few_shot_splits_are_balanced_and_disjoint_from_test():
    pool = _pool()
    data = sample_few_shot(pool, 7, seed=3)
    assert sorted(data.y_train.tolist()) == [0, 0, 0, 0, 1, 1, 1]
    assert len(data.y_test) == 40
    assert torch.equal(sample_few_shot(pool, 7, seed=3).x_train, data.x_train)


def test_cells_mean_se_and_best_rule():
    cell = mean_se([0.8, 0.9, 1.0])
    assert math.isclose(cell.mean, 0.9) and math.isclose(cell.se, 0.1 / math.sqrt(3))
    assert mean_se([0.5]).se is None and mean_se([]).mean is None
    outcomes = [
        TrialOutcome("gc", 4, 0, ((0.33, 0.9, 10), (0.41, 0.7, 3))),
        TrialOutcome("gc", 4, 1, (None, (0.42, 0.8, 5))),
        TrialOutcome("gc", 4, 2, (None, (0.43, 0.6, 2))),
    ]
    cells = aggregate(outcomes, 2)[("gc", 4)]
    assert cells[0].count == 1 and cells[1].count == 3
    # the 90% bin was filled by one trial of three: the best sturdy bin is the second
    assert math.isclose(best_cell(cells, trials=3).mean, 0.7)
    assert best_cell((Cell(None, None, 0),), trials=3).mean is None
    assert TrialOutcome.from_json(outcomes[0].to_json()) == outcomes[0]


def test_ten_class_splits_are_balanced_with_the_remainder_first():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 1, 2, 2)).astype(np.float32)
    y = np.arange(300) % 10
    data = sample_few_shot(((x[:200], y[:200]), (x[200:], y[200:])), 23, seed=1)
    counts = np.bincount(data.y_train.numpy(), minlength=10)
    assert counts.tolist() == [3, 3, 3, 2, 2, 2, 2, 2, 2, 2]


def test_matched_best_uses_only_bins_both_filled_and_gaps_are_paired():
    # G&C fills only the upper bin; SGD is best in the lower one, which G&C never reached
    gc = [TrialOutcome("gc", 4, t, (None, (0.45, 0.70 + 0.01 * t, 9))) for t in range(3)]
    sgd = [TrialOutcome("sgd", 4, t, ((0.35, 0.95, 5), (0.45, 0.80, 3))) for t in range(3)]
    cells = aggregate(gc + sgd, 2)
    m = matched_best(cells[("gc", 4)], cells[("sgd", 4)], trials=3)
    assert m.windows == (1,)
    assert math.isclose(m.reference.mean, 0.80)  # not SGD's 95% from the unmatched bin
    assert math.isclose(m.gap, 0.71 - 0.80)
    gaps = paired_gaps(gc + sgd, "gc", "sgd", 4, 2)
    assert gaps[0].count == 0 and gaps[1].count == 3
    assert math.isclose(gaps[1].mean, 0.71 - 0.80)
    # an unpaired trial (SGD missing in trial 2) is left out of the paired gap
    gaps = paired_gaps(gc + sgd[:2], "gc", "sgd", 4, 2)
    assert gaps[1].count == 2 and math.isclose(gaps[1].mean, 0.705 - 0.80)
