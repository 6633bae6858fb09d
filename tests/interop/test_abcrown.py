"""alpha-beta-CROWN export: one YAML per radius, a loader in its Customized(...) protocol."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
yaml = pytest.importorskip("yaml")

from threatlang.cli import main  # noqa: E402
from threatlang.errors import UsageError  # noqa: E402
from threatlang.interop.abcrown import export_abcrown  # noqa: E402
from threatlang.parse import parse  # noqa: E402

SPEC = """spec {name} {{
  model onnx("m.onnx")
  data digits {{ test_limit 3 }}
  threat {threat}
  require label_unchanged
  certify crown {{ time_limit 30s }}
}}
"""


@pytest.fixture
def onnx_model(tmp_path):
    from torch import nn

    from threatlang.interop.onnx_export import export_onnx

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    export_onnx(model, (1, 8, 8), tmp_path / "m.onnx")
    return tmp_path


@pytest.mark.parametrize("norm, yaml_norm", [("linf", float("inf")), ("l2", 2)])
def test_one_config_per_radius_and_a_working_loader(onnx_model, tmp_path, norm, yaml_norm):
    spec_file = tmp_path / "s.threat"
    threat = f"{norm}_ball {{ radii [0.1, 0.5] }}"
    spec_file.write_text(SPEC.format(name="ball", threat=threat))
    assert main(["compile", str(spec_file), "--emit", "abcrown", "-o", str(tmp_path / "ab")]) == 0
    configs = sorted((tmp_path / "ab").glob("*.yaml"))
    assert [c.name for c in configs] == ["ball_eps0.1.yaml", "ball_eps0.5.yaml"]
    cfg = yaml.safe_load(configs[1].read_text())
    assert cfg["specification"] == {"type": "lp", "norm": yaml_norm, "epsilon": 0.5}
    assert cfg["data"]["end"] == 3 and cfg["data"]["num_outputs"] == 10
    assert cfg["model"]["input_shape"] == [-1, 1, 8, 8]
    assert cfg["bab"]["timeout"] == 30
    assert cfg["attack"]["pgd_order"] == ("before" if norm == "linf" else "skip")
    loader = importlib.util.spec_from_file_location(
        "tl_data", tmp_path / "ab" / "threatlang_data.py"
    )
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    x, labels, data_max, data_min, eps = module.load({"epsilon": 0.5})
    from threatlang.data import load_dataset

    test = load_dataset(parse(SPEC.format(name="b", threat=threat)).data, 0).test
    np.testing.assert_array_equal(x.numpy(), test.x)
    np.testing.assert_array_equal(labels.numpy(), test.y)
    assert float(data_min) == 0.0 and float(data_max) == 1.0 and float(eps) == 0.5


def test_patch_and_parameter_threats_are_refused(onnx_model, tmp_path):
    patch = parse(SPEC.format(name="p", threat="patch { shape square(2) }"))
    with pytest.raises(UsageError, match="use --emit vnnlib"):
        export_abcrown(patch, tmp_path / "x")
    params = parse(
        'spec w {\n model onnx("m.onnx")\n data digits\n'
        " threat l2_ball { around parameters\n radius 0.1 }\n"
        " require accuracy_at_least(0.5)\n smooth median { sigma 0.1 }\n}\n"
    )
    with pytest.raises(UsageError, match="parameters"):
        export_abcrown(params, tmp_path / "y")
