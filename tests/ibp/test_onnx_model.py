"""An ONNX model (as `threatlang import-vnnlib` writes specs for) runs on the ibp backend: the
shared loader converts it to layers the bound engine reads, and its records match those of the
torch module it was exported from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

import threatlang

pytest.importorskip("onnx")
from threatlang.interop.onnx_export import export_onnx  # noqa: E402

SPEC = """threatlang 1
spec onnx_patch {
  model onnx("m.onnx")
  data digits {
    test_limit 20
  }
  seed 0
  threat patch {
    shape square(1)
    locations all
    values [0, 1]
  }
  require label_unchanged
  certify ibp
}
"""


def _trained_mlp() -> nn.Sequential:
    """A small digits classifier, trained here in a second (full batch, fixed seed)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(digits.target, dtype=torch.long)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def _records(out) -> list[dict]:
    lines = (out / "records.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in lines]


def test_onnx_spec_runs_and_certifies_like_the_exported_module(tmp_path) -> None:
    model = _trained_mlp()
    export_onnx(model, (1, 8, 8), tmp_path / "m.onnx")
    spec_path = tmp_path / "s.threat"
    spec_path.write_text(SPEC)
    # the spec names the file relative to itself: run from elsewhere
    result = threatlang.run(spec_path, output=tmp_path / "onnx", quiet=True)
    assert result.summary.metrics["examples"] == 20
    assert result.summary.metrics["certified_accuracy"] > 0  # has teeth
    records = _records(tmp_path / "onnx")
    assert {r["status"] for r in records} <= {"certified", "falsified", "unknown"}
    direct = threatlang.run(spec_path, model=model, output=tmp_path / "torch", quiet=True)
    assert (
        direct.summary.metrics["certified_accuracy"] == result.summary.metrics["certified_accuracy"]
    )
    mine = _records(tmp_path / "torch")
    assert [(r["id"], r["status"]) for r in mine] == [(r["id"], r["status"]) for r in records]
    margins = [r["values"]["margin_lower"] for r in records]
    np.testing.assert_allclose(margins, [r["values"]["margin_lower"] for r in mine], atol=1e-4)
