"""alpha-beta-CROWN export: one YAML per radius, a loader in its Customized(...) protocol, and
every key checked against alpha-beta-CROWN's own argument definitions.

The table `threatlang/interop/abcrown_keys.py` is extracted from its
`complete_verifier/arguments.py` by this module run as a script:

    python tests/interop/test_abcrown.py PATH/TO/arguments.py COMMIT && ruff format threatlang/interop/abcrown_keys.py

With `ABCROWN_ARGUMENTS=PATH/TO/arguments.py` set (a checkout of alpha-beta-CROWN; its
config loader needs only torch and pyyaml), the emitted configs are also loaded by its own
`ConfigHandler.parse_config`, and the committed table is compared with a fresh extraction.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).parents[2]
UPSTREAM = os.environ.get("ABCROWN_ARGUMENTS")


def extract_keys(arguments_py: str | Path) -> dict[str, tuple[str, tuple | None]]:
    """{"general.device": ("str", ("cpu", "cuda")), ...} from alpha-beta-CROWN's argument
    parser: each config path, its value type and its choices."""
    handler = _config_handler(arguments_py)
    actions = {a.dest: a for a in handler.defaults_parser._actions}
    names = {str: "str", int: "int", float: "float"}
    keys = {}
    for dest, hierarchy in handler.config_file_hierarchies.items():
        if hierarchy is None:
            continue
        action = actions[dest]
        if type(action).__name__ in ("_StoreTrueAction", "_StoreFalseAction"):
            kind = "bool"
        else:
            kind = "str" if action.type is None else names.get(action.type, "any")
            if action.nargs in ("+", "*"):
                kind = f"list[{kind}]"
        keys[".".join(hierarchy)] = (kind, tuple(action.choices) if action.choices else None)
    return keys


def _config_handler(arguments_py: str | Path):
    spec = importlib.util.spec_from_file_location("abcrown_arguments", arguments_py)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ConfigHandler()


def write_table(arguments_py: str, commit: str) -> None:
    keys = extract_keys(arguments_py)
    lines = [
        '"""alpha-beta-CROWN\'s configuration keys: every path its YAML loader accepts, with the',
        "value type and the choices its argument parser declares. Data only, extracted from",
        "`complete_verifier/arguments.py` of https://github.com/Verified-Intelligence/alpha-beta-CROWN",
        "at `COMMIT` by `python tests/interop/test_abcrown.py ARGUMENTS_PY COMMIT`; do not edit.",
        '"""',
        "",
        f'COMMIT = "{commit}"',
        "",
        "#: config path -> (value type, allowed values or None)",
        "KEYS: dict[str, tuple[str, tuple | None]] = {",
        *(f"    {path!r}: {value!r}," for path, value in sorted(keys.items())),
        "}",
        "",
    ]
    (ROOT / "threatlang" / "interop" / "abcrown_keys.py").write_text("\n".join(lines))


if __name__ == "__main__":
    write_table(sys.argv[1], sys.argv[2])
    sys.exit(0)

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
yaml = pytest.importorskip("yaml")

from threatlang.cli import main  # noqa: E402
from threatlang.errors import UsageError  # noqa: E402
from threatlang.interop.abcrown import config_problems, export_abcrown  # noqa: E402
from threatlang.interop.abcrown_keys import KEYS  # noqa: E402
from threatlang.parse import load, parse  # noqa: E402

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
    assert cfg["specification"] == {
        "type": "lp",
        "robustness_type": "verified-acc",
        "norm": yaml_norm,
        "epsilon": 0.5,
    }
    assert config_problems(cfg) == []  # every key is one alpha-beta-CROWN defines
    assert "mode" not in cfg["general"]  # issue 15: a key it never had
    assert cfg["data"]["end"] == 3 and cfg["data"]["num_outputs"] == 10
    assert cfg["model"]["input_shape"] == [-1, 1, 8, 8]
    assert cfg["bab"]["timeout"] == 30
    assert cfg["attack"]["pgd_order"] == ("before" if norm == "linf" else "skip")
    # alpha-beta-CROWN resolves Customized("X.py", ...) beside the config file
    assert cfg["data"]["dataset"] == 'Customized("threatlang_data.py", "load")'
    loader = importlib.util.spec_from_file_location(
        "tl_data", configs[1].with_name("threatlang_data.py")
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


def test_the_table_refuses_what_alpha_beta_crown_refuses():
    """The old export's `general.mode` stopped alpha-beta-CROWN at once; wrong choices and
    types are caught too, and the keys the export relies on exist in its table."""
    assert config_problems({"general": {"mode": "verified-acc"}}) == [
        "general.mode is not an alpha-beta-CROWN key (arguments.py at 8250d5fbd530)"
    ]
    assert "one of" in config_problems({"specification": {"robustness_type": "robust"}})[0]
    assert "takes int" in config_problems({"data": {"end": 2.5}})[0]
    assert "takes list[int]" in config_problems({"model": {"input_shape": ["a"]}})[0]
    assert KEYS["specification.robustness_type"][1][0] == "verified-acc"


def test_the_shipped_spec_exports_a_loadable_config(tmp_path):
    """specs/linf_digits_abcrown.threat: its network (weights as a run would save them), data and
    one config per radius, each key valid; alpha-beta-CROWN's own loader reads it when a
    checkout is named by ABCROWN_ARGUMENTS."""
    from threatlang.models_io import build_builtin

    spec = load(ROOT / "specs" / "linf_digits_abcrown.threat")
    weights = tmp_path / "model.pt"
    torch.save(build_builtin("mlp255", (1, 8, 8), 10).state_dict(), weights)
    done = export_abcrown(spec, tmp_path / "ab", weights=weights, limit=5)
    assert [c.name for c in done.configs] == [
        "linf_digits_abcrown_eps0.01.yaml",
        "linf_digits_abcrown_eps0.03.yaml",
    ]
    for path in done.configs:
        cfg = yaml.safe_load(path.read_text())
        assert config_problems(cfg) == []
        assert cfg["specification"]["norm"] == float("inf") and cfg["data"]["end"] == 5
        assert cfg["bab"]["timeout"] == 30.0
        if UPSTREAM:
            handler = _config_handler(UPSTREAM)
            handler.parse_config(["--config", str(path)], verbose=False)
            assert handler["specification"]["robustness_type"] == "verified-acc"
            assert handler["specification"]["epsilon"] == cfg["specification"]["epsilon"]


@pytest.mark.skipif(not UPSTREAM, reason="set ABCROWN_ARGUMENTS to an alpha-beta-CROWN checkout")
def test_the_committed_table_is_alpha_beta_crowns(tmp_path):
    assert extract_keys(UPSTREAM) == KEYS
    bad = tmp_path / "bad.yaml"
    bad.write_text("general:\n  mode: verified-acc\n")
    with pytest.raises(ValueError, match="Config key .'general', 'mode'. not found"):
        _config_handler(UPSTREAM).parse_config(["--config", str(bad)], verbose=False)
