import torch

from threatlang.backends.landscape.levels import windows_from_edges
from threatlang.backends.landscape.sgd import SGDConfig, sgd


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
