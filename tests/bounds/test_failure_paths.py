"""The failure paths of certification, exercised on purpose: an engine that returns unsound
bounds is caught by bound validation (soundness_violations > 0, no certificate), a bounded
graph that is not the model is caught by translation validation (unknown), and a margin that
is negative by a hair is never certified."""

from __future__ import annotations

import attrs
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import threatlang
from threatlang.backends.ibp.certify import CertifyConfig, Outcome, certify_patches
from threatlang.backends.ibp.config import Engine
from threatlang.backends.ibp.patches import PatchThreat, square
from threatlang.bounds.crown import Method
from threatlang.bounds.engine import BoundedNetwork

SPEC = """threatlang 1
spec broken {
  model mlp255
  data digits {
    test_limit 24
  }
  threat THREAT
  require label_unchanged
  certify METHOD
}
"""
PATCH = "patch {\n    shape square(2)\n    locations all\n    values [0, 1]\n  }"
LINF = "linf_ball {\n    radius 0.05\n  }"
L2 = "l2_ball {\n    radius 0.3\n  }"


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(64, 32), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(F.relu(self.a(x.flatten(1))))


@pytest.fixture(scope="module")
def trained() -> Net:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    torch.manual_seed(0)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(80):
        opt.zero_grad()
        F.cross_entropy(net(x[:1000]), y[:1000]).backward()
        opt.step()
    return net.eval()


def _inflate(monkeypatch, cls, by: float = 1000.0) -> None:
    """An unsound engine: every margin lower bound raised by ``by``."""
    real = cls.margins

    def margins(self, inputs, y, cfg=None):  # noqa: ANN001
        m = real(self, inputs, y) if cfg is None else real(self, inputs, y, cfg)
        return m + by

    monkeypatch.setattr(cls, "margins", margins)


def _threat_spec(threat: str, method: str) -> str:
    return SPEC.replace("THREAT", threat).replace("METHOD", method)


@pytest.mark.parametrize(
    "threat, method", [(PATCH, "ibp"), (PATCH, "crown"), (LINF, "crown"), (L2, "ibp")]
)
def test_an_unsound_engine_is_caught_and_certifies_nothing(
    trained, tmp_path, monkeypatch, threat: str, method: str
) -> None:
    _inflate(monkeypatch, BoundedNetwork)
    if threat == PATCH:  # patch margins go through the patch engines, not .margins
        import threatlang.backends.ibp.certify as certify

        real = certify.worst_margins

        def worst(*args, **kw):  # noqa: ANN002, ANN003
            wc = real(*args, **kw)
            return attrs.evolve(wc, margins=wc.margins + 1000.0)

        monkeypatch.setattr(certify, "worst_margins", worst)
    spec = threatlang.parse(_threat_spec(threat, method))
    result = threatlang.run(spec, model=trained, output=tmp_path / "r", quiet=True)
    m = result.summary.metrics
    assert m["soundness_violations"] > 0
    assert not any(r.status.value == "certified" for r in result.records)
    defects = [r for r in result.records if r.status.value == "error"]
    assert defects and all("engine defect" in r.reason for r in defects)


def test_an_unsound_auto_lirpa_is_caught(trained, tmp_path, monkeypatch) -> None:
    pytest.importorskip("auto_LiRPA")
    from threatlang.bounds.lirpa import LirpaNetwork

    _inflate(monkeypatch, LirpaNetwork)
    text = _threat_spec(LINF, "crown {\n    engine auto_lirpa\n  }")
    result = threatlang.run(
        threatlang.parse(text), model=trained, output=tmp_path / "r", quiet=True
    )
    assert result.summary.metrics["soundness_violations"] > 0
    assert not any(r.status.value == "certified" for r in result.records)


def test_a_graph_that_is_not_the_model_is_unknown(trained, monkeypatch) -> None:
    """Translation validation: the bounded graph computes something else (here: a bias
    shifted after capture, as a wrong lowering rule would) -> unknown with the reason."""
    x = torch.rand(6, 1, 8, 8)
    y = trained(x).argmax(1)
    real = BoundedNetwork.bounded_forward
    monkeypatch.setattr(BoundedNetwork, "bounded_forward", lambda self, v: real(self, v) + 0.1)
    certs = certify_patches(trained, x, y, PatchThreat((square(2),)), CertifyConfig())
    assert all(c.outcome is Outcome.UNSUPPORTED for c in certs)
    assert all("differs from the model" in c.reason for c in certs)


def test_a_nondeterministic_model_is_unknown() -> None:
    class Noisy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(64, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.lin(x.flatten(1)) + 1e-3 * torch.randn(x.shape[0], 3)

    model = Noisy().eval()
    x = torch.rand(4, 1, 8, 8)
    y = model(x).argmax(1)
    certs = certify_patches(model, x, y, PatchThreat((square(1),)), CertifyConfig())
    assert all(c.outcome is Outcome.UNSUPPORTED for c in certs)


def test_a_margin_negative_by_a_hair_is_not_certified() -> None:
    """A linear model (IBP is exact on it) whose worst margin over the patch set is -1e-6."""
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.zero_()
        lin.weight[0, 0] = 1.0  # z0 - z1 = x0 - 1e-6 + 0.5 ... shifted below
        lin.bias.copy_(torch.tensor([-1e-6, 0.0]))
    model = nn.Sequential(nn.Flatten(), lin).eval()
    x = torch.ones(1, 1, 2, 2)
    y = torch.tensor([0])
    # the patch can set x0 to 0: z0 - z1 = 0 - 1e-6 < 0
    for method in (Method.IBP, Method.CROWN):
        (cert,) = certify_patches(
            model, x, y, PatchThreat((square(1),)), CertifyConfig(method=method, engine=Engine.OURS)
        )
        assert cert.outcome is Outcome.NOT_CERTIFIED
        assert cert.margin <= 0
