"""Bring your own model and data: a pretrained module of the user's own class, data as tensors,
a Dataset or a DataLoader, a text spec without `train`; and the same from a spec's own
`state_dict(...)` / `torchscript(...)` / `onnx(...)` reference. Every missing piece is one
sentence saying what to provide."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import threatlang
from threatlang.errors import SpecError, UsageError

#: a text spec that never trains: it certifies whatever weights it is given
CERTIFY_ONLY = """threatlang 1
spec mine {
  model mlp255
  data digits {
    test_limit 40
  }
  threat patch {
    shape square(1)
    locations all
    values [0, 1]
  }
  require label_unchanged
  attack pgd {
    steps 10
  }
  certify crown
}
"""


class DigitNet(nn.Module):
    """A user's own class: its forward is its own code (a scaled input, two branches summed)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(64, 32)
        self.head = nn.Linear(32, 10)
        self.shortcut = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.flatten(x, 1) * 2.0 - 1.0
        return self.head(F.relu(self.body(z))) + 0.1 * self.shortcut(z)


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    return x, torch.tensor(d.target, dtype=torch.long)


@pytest.fixture(scope="module")
def pretrained() -> DigitNet:
    """Trained here in a second (full batch, fixed seed), as a user brings it."""
    x, y = _digits()
    torch.manual_seed(0)
    model = DigitNet()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(100):
        opt.zero_grad()
        F.cross_entropy(model(x[:1200]), y[:1200]).backward()
        opt.step()
    return model.eval()


def _records(result) -> list[tuple]:
    return [(r.id, r.status.value, r.values.get("margin_lower")) for r in result.records]


def test_a_text_spec_without_train_certifies_a_handed_in_module(pretrained, tmp_path):
    spec = threatlang.parse(CERTIFY_ONLY)  # parses: the weights come with run()
    before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    result = threatlang.run(spec, model=pretrained, output=tmp_path / "a", quiet=True)
    m = result.summary.metrics
    assert m["clean_accuracy"] > 0.8
    assert 0 < m["certified_accuracy"] <= m["empirical_accuracy"] <= m["clean_accuracy"]
    assert m["soundness_violations"] == 0
    assert "train_seconds" not in m and not (tmp_path / "a" / "model.pt").exists()
    after = pretrained.state_dict()  # certified as handed in, not retrained
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_data_as_tensors_dataset_or_loader_give_the_same_records(pretrained, tmp_path):
    x, y = _digits()
    xt, yt = x[1200:1240], y[1200:1240]
    spec = threatlang.parse(CERTIFY_ONLY.replace("certify crown", "certify ibp"))
    runs = {
        "tensors": (xt, yt),
        "dataset": TensorDataset(xt, yt),
        "loader": DataLoader(TensorDataset(xt, yt), batch_size=16),
        "mapping": {"test": (xt.numpy(), yt.numpy())},
    }
    results = {
        name: threatlang.run(spec, model=pretrained, data=d, output=tmp_path / name, quiet=True)
        for name, d in runs.items()
    }
    first = _records(results["tensors"])
    assert len(first) == 40 and any(s == "certified" for _, s, _ in first)
    for name, result in results.items():
        assert _records(result) == first, name


def test_missing_weights_or_data_say_what_to_provide(pretrained, tmp_path):
    spec = threatlang.parse(CERTIFY_ONLY)
    with pytest.raises(SpecError, match=r"never trains it.*model=") as err:
        threatlang.run(spec, output=tmp_path / "a", quiet=True)
    assert "state_dict" in str(err.value)
    trains = CERTIFY_ONLY.replace("  attack pgd", "  train standard\n  attack pgd")
    x, y = _digits()
    with pytest.raises(UsageError, match="no training split"):
        threatlang.run(
            threatlang.parse(trains), data=(x[:10], y[:10]), output=tmp_path / "b", quiet=True
        )
    wrong = nn.Sequential(nn.Flatten(), nn.Linear(10, 10))  # expects 10 features, gets 64
    with pytest.raises(UsageError, match=r"does not run on the data's inputs of shape \(1, 8, 8\)"):
        threatlang.run(spec, model=wrong, output=tmp_path / "c", quiet=True)
    few = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))  # 3 outputs for 10 classes
    with pytest.raises(UsageError, match="10 classes"):
        threatlang.run(spec, model=few, output=tmp_path / "d", quiet=True)


class SkipSequential(nn.Sequential):
    """A Sequential subclass whose forward adds a skip connection of its own: bounding it as
    the plain Sequential (by its type) would ignore the skip and certify everything."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        return out + 20.0 * x[:, :, 0, 0] * torch.eye(10)[7]


def test_a_skip_connection_written_in_forward_is_bounded_or_unknown(tmp_path):
    """The plain Sequential predicts class 3 with margin 5 whatever the input; the skip adds
    20 to class 7 as pixel (0, 0) goes to 1, which a 1x1 patch at the corner does. Sound or
    silent: no image may be certified, and the attack finds the corner."""
    linear = nn.Linear(64, 10)
    with torch.no_grad():
        linear.weight.zero_()
        linear.bias.copy_(5.0 * torch.eye(10)[3])
    model = SkipSequential(nn.Flatten(), linear).eval()
    x, _ = _digits()
    x = x[:30]
    assert float(x[:, 0, 0, 0].abs().max()) == 0  # digits' corners are blank: clean is class 3
    y = torch.full((30,), 3)
    spec = threatlang.parse(CERTIFY_ONLY.replace("certify crown", "certify ibp"))
    result = threatlang.run(spec, model=model, data=(x, y), output=tmp_path, quiet=True)
    m = result.summary.metrics
    assert m["clean_accuracy"] == 1.0
    assert m["certified_accuracy"] == 0 and m["soundness_violations"] == 0
    assert m["empirical_accuracy"] == 0  # the corner patch flips every image
    for r in result.records:
        assert r.status.value == "falsified"
        assert r.counterexample["location"] == [0, 0]


@pytest.mark.parametrize(
    "kind",
    [
        "state_dict",
        pytest.param("torchscript", marks=pytest.mark.slow),
        pytest.param("onnx", marks=pytest.mark.slow),
    ],
)
def test_a_spec_certifies_weights_from_a_file_without_training(kind, tmp_path):
    """`certify` without `train` on a model file: the records are the handed-in module's."""
    from threatlang.backends.ibp.models import mlp255

    x, y = _digits()
    torch.manual_seed(1)
    model = mlp255((1, 8, 8), 10)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        F.cross_entropy(model(x[:1200]), y[:1200]).backward()
        opt.step()
    model.eval()
    if kind == "state_dict":
        torch.save(model.state_dict(), tmp_path / "w.pt")
        ref = 'state_dict("w.pt") {\n    arch mlp255\n  }'
    elif kind == "torchscript":
        torch.jit.script(model).save(str(tmp_path / "w.ts"))
        ref = 'torchscript("w.ts")'
    else:
        pytest.importorskip("onnx")
        from threatlang.interop.onnx_export import export_onnx

        export_onnx(model, (1, 8, 8), tmp_path / "w.onnx")
        ref = 'onnx("w.onnx")'
    text = CERTIFY_ONLY.replace("model mlp255", f"model {ref}")
    path = tmp_path / "s.threat"
    path.write_text(text)
    code = kind == "torchscript"  # a TorchScript archive is code: it needs consent
    from_file = threatlang.run(path, output=tmp_path / "file", quiet=True, allow_code=code)
    handed = threatlang.run(path, model=model, output=tmp_path / "module", quiet=True)
    m = from_file.summary.metrics
    assert m["clean_accuracy"] > 0.7 and m["certified_accuracy"] > 0
    assert [(r.id, r.status) for r in from_file.records] == [
        (r.id, r.status) for r in handed.records
    ]
    spec_json = json.loads((tmp_path / "file" / "summary.json").read_text())
    assert spec_json  # the run wrote its summary


def test_the_command_line_says_a_builtin_needs_weights(tmp_path, capsys):
    """`threatlang check` cannot be handed a module: an untrained builtin is an error there."""
    from threatlang.cli import main

    path = tmp_path / "s.threat"
    path.write_text(CERTIFY_ONLY)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr()
    assert "never trains it" in err.out + err.err
