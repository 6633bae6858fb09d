import torch

from threatlang.backends.landscape.config import SGDConfig
from threatlang.backends.landscape.levels import windows_from_edges
from threatlang.backends.landscape.sgd import sgd


def test_sgd_fits_and_records_windows_in_order(blobs, small_model):
    x, y = blobs
    theta0 = small_model.default_init(torch.Generator().manual_seed(0))
    windows = windows_from_edges((0.3, 0.4, 0.5, 0.6))
    res = sgd(
        small_model, x, y, theta0, windows, SGDConfig(lr=0.05, max_steps=300), torch.Generator()
    )
    hits = [h for h in res.hits if h is not None]
    assert hits, "SGD should fit eight separable points"
    for h in hits:
        assert h.accuracy == 1.0 and h.loss in h.window
    assert not torch.equal(res.theta, theta0)


def test_sgd_takes_momentum_steps_on_the_training_loss(blobs, small_model):
    import torch.nn.functional as F

    from threatlang.backends.landscape.levels import below

    x, y = blobs
    theta0 = small_model.default_init(torch.Generator().manual_seed(0))
    cfg = SGDConfig(lr=0.1, momentum=0.9, max_steps=5, weight_decay=0.01)
    res = sgd(small_model, x, y, theta0, (below(1e-4),), cfg, torch.Generator())
    assert res.evaluations == 5 and not torch.equal(res.theta, theta0)
    # the recorded training losses are those of the iterates (step 0 = the initialisation)
    first = float(F.cross_entropy(small_model.logits_one(theta0, x), y))
    assert abs(res.accepted_losses[0] - first) < 1e-6
    assert res.accepted_losses[-1] < first
