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


def test_update_rules_match_torch_optim(blobs, small_model):
    import torch.nn.functional as F

    from threatlang.backends.landscape.levels import below
    from threatlang.backends.landscape.poison import _Adam

    x, y = blobs
    theta0 = small_model.default_init(torch.Generator().manual_seed(0))
    cfg = SGDConfig(lr=0.1, momentum=0.9, max_steps=5, weight_decay=0.01)
    ours = sgd(small_model, x, y, theta0, (below(1e-4),), cfg, torch.Generator()).theta
    ref = theta0.clone().requires_grad_(True)
    opt = torch.optim.SGD([ref], lr=0.1, momentum=0.9, weight_decay=0.01)
    ref2 = theta0.clone().requires_grad_(True)
    adam_ref, adam = torch.optim.Adam([ref2], lr=0.01), None
    mine = theta0.clone().requires_grad_(True)
    adam = _Adam(mine, 0.01)
    for _ in range(5):
        opt.zero_grad()
        F.cross_entropy(small_model.logits_one(ref, x), y).backward()
        opt.step()
        adam_ref.zero_grad()
        F.cross_entropy(small_model.logits_one(ref2, x), y).backward()
        adam_ref.step()
        loss = F.cross_entropy(small_model.logits_one(mine, x), y)
        adam.step(torch.autograd.grad(loss, mine)[0])
    assert torch.allclose(ours, ref.detach(), atol=1e-6)
    assert torch.allclose(mine.detach(), ref2.detach(), atol=1e-6)
