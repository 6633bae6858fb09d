"""The computation is bounded, not the class: a user's module with its own forward is traced
into, unsupported ops are refused by name and place, and engine `auto` falls back to
auto_LiRPA only where ours cannot bound the graph."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from threatlang.backends.ibp.certify import CertifyConfig, Outcome, certify_patches
from threatlang.backends.ibp.config import Engine
from threatlang.backends.ibp.patches import PatchThreat, apply_patch, mask_tensor, offsets, square
from threatlang.backends.ibp.select import select_engine
from threatlang.bounds import UnsupportedOp, capture
from threatlang.bounds.crown import Method, bound_graph
from threatlang.bounds.engine import BoundedNetwork, margin_matrix
from threatlang.bounds.inputs import linf_ball
from threatlang.bounds.merge import BoundAdd

from .zoo import SkipSequential


def _skip_model() -> nn.Module:
    """Issue #13's unsound example: the skip carries the input, the body barely does. Bounded
    as the plain Sequential (the old engine), every output looked constant and every image
    certified, while a 2x2 patch at a vertex flips the real model."""
    torch.manual_seed(0)
    body = nn.Conv2d(1, 1, 1)
    body.weight.data.fill_(1e-3)
    head = nn.Linear(64, 10)
    head.weight.data.normal_(0, 1.0)
    head.bias.data.zero_()
    head.bias.data[0] = 6.0
    return nn.Sequential(SkipSequential(body), nn.Flatten(), head).eval()


def _vertex_attack_flips(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per image: some 2x2 patch of corner values (0/1) at some placement misclassifies it."""
    mask = mask_tensor(square(2))
    offs = offsets(PatchThreat((square(2),)).locations, (8, 8), (2, 2))
    flipped = torch.zeros(x.shape[0], dtype=torch.bool)
    with torch.no_grad():
        for bits in itertools.product((0.0, 1.0), repeat=4):
            content = torch.tensor(bits).reshape(1, 1, 1, 2, 2)
            imgs = apply_patch(x, mask, offs, content.expand(x.shape[0], offs.shape[0], 1, 2, 2))
            pred = model(imgs.reshape(-1, 1, 8, 8)).argmax(1).reshape(x.shape[0], -1)
            flipped |= (pred != y[:, None]).any(1)
    return flipped


def test_sequential_subclass_with_skip_is_bounded_as_written() -> None:
    model = _skip_model()
    x = torch.rand(24, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    net = BoundedNetwork(model, x)
    assert any(isinstance(n.op, BoundAdd) for n in net.graph.nodes), "the skip was dropped"
    with torch.no_grad():
        assert torch.allclose(net.logits(x), model(x), atol=1e-5)
    flipped = _vertex_attack_flips(model, x, y)
    assert int(flipped.sum()) > 0, "the threat should be real for this model"
    for method in (Method.IBP, Method.CROWN):
        certs = certify_patches(
            model, x, y, PatchThreat((square(2),)), CertifyConfig(method=method, engine=Engine.OURS)
        )
        ok = torch.tensor([c.outcome is Outcome.CERTIFIED for c in certs])
        assert not bool((ok & flipped).any()), method


class _SinReLU(nn.ReLU):
    def forward(self, x: Tensor) -> Tensor:  # its own forward: captured as written
        return torch.sin(x)


class _Sin(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


class _Branchy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:  # data-dependent control flow
            return self.lin(x)
        return -self.lin(x)


class _DoubledLinear(nn.Linear):
    def forward(self, x: Tensor) -> Tensor:  # differs from nn.Linear: bounded as written
        return 2 * F.linear(x, self.weight, self.bias) - 1


@pytest.mark.parametrize(
    "model, op, where",
    [
        (nn.Sequential(nn.Linear(4, 4), _Sin(), nn.Linear(4, 2)), "aten.sin.default", "'1'"),
        (nn.Sequential(nn.Linear(4, 4), _SinReLU(), nn.Linear(4, 2)), "aten.sin.default", "'1'"),
        (_Branchy(), "_Branchy", "data-dependent"),
    ],
)
def test_unsupported_ops_are_named_with_their_place(model: nn.Module, op: str, where: str) -> None:
    with pytest.raises(UnsupportedOp) as err:
        capture(model, torch.rand(2, 4))
    assert err.value.op == op
    assert where in str(err.value)
    assert "test_capture.py" in str(err.value)  # the source line of the op


def test_unsupported_model_is_unknown_with_the_reason() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), _Sin(), nn.Linear(8, 3)).eval()
    x = torch.rand(3, 1, 8, 8)
    y = model(x).argmax(1)
    certs = certify_patches(
        model, x, y, PatchThreat((square(2),)), CertifyConfig(engine=Engine.OURS)
    )
    assert all(c.outcome is Outcome.UNSUPPORTED for c in certs)
    assert all("aten.sin" in c.reason and "'2'" in c.reason for c in certs)


def test_a_module_with_its_own_forward_is_bounded_by_what_it_computes() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(_DoubledLinear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    x = torch.rand(5, 4)
    graph = capture(model, x)
    with torch.no_grad():
        assert torch.allclose(graph.forward(x), model(x), atol=1e-6)
        res = bound_graph(graph, x - 0.2, x + 0.2, Method.CROWN)
        xs = x + (torch.rand(2000, 5, 4) * 2 - 1) * 0.2
        z = model(xs)
    assert bool((res.lb <= z.amin(0) + 1e-5).all()) and bool((res.ub >= z.amax(0) - 1e-5).all())


def test_engine_auto_falls_back_to_auto_lirpa_only_where_needed() -> None:
    pytest.importorskip("auto_LiRPA")
    from threatlang.bounds.lirpa import LirpaNetwork

    torch.manual_seed(0)
    ours = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    theirs = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), _Sin(), nn.Linear(8, 3)).eval()
    x = torch.rand(4, 1, 4, 4)
    assert isinstance(select_engine(ours, Engine.AUTO, x), BoundedNetwork)
    net = select_engine(theirs, Engine.AUTO, x)
    assert isinstance(net, LirpaNetwork)
    y = theirs(x).argmax(1)
    with torch.no_grad():
        m = net.margins(linf_ball(x, 0.05), y)
        xs = (x + (torch.rand(1000, *x.shape) * 2 - 1) * 0.05).clamp(0, 1)
        z = theirs(xs.reshape(-1, 1, 4, 4)).reshape(1000, 4, 3)
    emp = torch.einsum("nsk,mnk->mns", margin_matrix(y, 3), z).amin(0)
    assert bool((m <= emp + 1e-5).all())


def test_auto_lirpa_certifies_patches_soundly() -> None:
    pytest.importorskip("auto_LiRPA")
    model = _skip_model()
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        y = model(x).argmax(1)
    threat = PatchThreat((square(2),))
    flipped = _vertex_attack_flips(model, x, y)
    for method in (Method.IBP, Method.CROWN):
        lirpa = certify_patches(
            model, x, y, threat, CertifyConfig(method=method, engine=Engine.AUTO_LIRPA)
        )
        ours = certify_patches(model, x, y, threat, CertifyConfig(method=method))
        ok = torch.tensor([c.outcome is Outcome.CERTIFIED for c in lirpa])
        assert not bool((ok & flipped).any())
        for a, b in zip(lirpa, ours, strict=True):  # IBP: the same; CROWN: ours no looser
            tol = 1e-4 * (1 + abs(a.margin))
            assert b.margin >= a.margin - tol
            if method is Method.IBP:
                assert b.margin <= a.margin + tol


def test_input_normalisation_is_bounded_on_the_fast_patch_path() -> None:
    """A normalisation module (``(x - mean) / std`` in its forward; the engine used to refuse
    the importer's Normalize layer) is two per-channel constant ops, local enough for the
    receptive-field engine."""
    from threatlang.backends.ibp.margins import patch_margins

    from .zoo import Normalize

    torch.manual_seed(0)
    model = nn.Sequential(
        Normalize(torch.tensor(0.3).reshape(1, 1, 1, 1), torch.tensor(0.2).reshape(1, 1, 1, 1)),
        nn.Conv2d(1, 3, 3, 2, 1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 16 * 16, 10),
    ).eval()
    x = torch.rand(2, 1, 32, 32)
    y = model(x).argmax(1)
    net = BoundedNetwork(model, x)
    mask = mask_tensor(square(3))
    offs = offsets(PatchThreat((square(3),)).locations, (32, 32), (3, 3))[:40]
    with torch.no_grad():
        local = patch_margins(net, x, y, mask, offs, 0.0, 1.0, local=True)
        dense = patch_margins(net, x, y, mask, offs, 0.0, 1.0, local=False)
    assert torch.allclose(local, dense, atol=1e-4)
