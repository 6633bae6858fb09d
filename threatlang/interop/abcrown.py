"""`threatlang compile SPEC --emit abcrown --output DIR`: hand an Lp-ball spec to the complete
verifier alpha-beta-CROWN. One YAML config per radius, the ONNX network, the test examples as
`data.npz`, and a tiny data loader module in alpha-beta-CROWN's `Customized(...)` protocol (a
`.py` file, which it resolves beside the config):

    python abcrown.py --config DIR/SPEC_eps0.1.yaml

Every key written is checked against alpha-beta-CROWN's own argument table (`abcrown_keys`,
extracted from its `complete_verifier/arguments.py`): its loader stops at the first key it does
not define ("Config key [...] not found"), so an unknown key is a bug here, never a file.

Patch sets are unions of boxes (use `--emit vnnlib`); smoothing and parameter threats have no
alpha-beta-CROWN counterpart and are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import numpy as np

from ..errors import UsageError
from ..ir import Certify, LabelUnchanged, LpBall, Norm, Smooth, Spec, Target
from .abcrown_keys import COMMIT, KEYS
from .boxes import refuse_preprocessing
from .export import DEFAULT_TIMEOUT, write_model

LOADER = '''"""Data loader for alpha-beta-CROWN written by threatlang: the test examples of one spec,
in [data_min, data_max], as `Customized("threatlang_data", "load")`."""

from pathlib import Path

import numpy as np
import torch


def load(spec):
    data = np.load(Path(__file__).with_name("data.npz"))
    x = torch.from_numpy(data["x"]).float()
    labels = torch.from_numpy(data["y"]).long()
    ones = (1,) * x.dim()
    data_min = torch.tensor(float(data["low"])).reshape(ones)
    data_max = torch.tensor(float(data["high"])).reshape(ones)
    eps = torch.tensor(float(spec["epsilon"])).reshape(ones)
    return x, labels, data_max, data_min, eps
'''


@attrs.frozen
class AbcrownExport:
    configs: tuple[Path, ...]
    onnx: Path
    data: Path


def _refuse(spec: Spec) -> LpBall:
    threat = spec.threat
    if not isinstance(threat, LpBall):
        hint = " (a patch set is a union of boxes: use --emit vnnlib)" if threat else ""
        raise UsageError(
            f"--emit abcrown exports Lp-ball specs; spec '{spec.name}' has a "
            f"{type(threat).__name__} threat{hint}."
        )
    if threat.target is Target.PARAMETERS:
        raise UsageError(
            f"spec '{spec.name}' perturbs the parameters; alpha-beta-CROWN bounds inputs only."
        )
    refuse_preprocessing(spec)
    if any(isinstance(a, Smooth) for a in spec.actions):
        raise UsageError(
            f"spec '{spec.name}' is certified by smoothing, a property of the smoothed "
            "classifier; alpha-beta-CROWN would verify a different network."
        )
    if not isinstance(spec.require, LabelUnchanged):
        raise UsageError(f"--emit abcrown states label_unchanged; spec '{spec.name}' does not.")
    return threat


def abcrown_config(
    threat: LpBall, radius: float, onnx_path: Path, shape, outputs: int, count: int, timeout: float
) -> dict:
    """The config of one radius, as the nested mapping alpha-beta-CROWN's YAML loader reads;
    every key is checked against its argument table before it is returned."""
    linf = threat.norm is Norm.LINF
    config = {
        "general": {"device": "cpu", "complete_verifier": "bab"},
        "model": {"onnx_path": str(onnx_path), "input_shape": [-1, *map(int, shape)]},
        "data": {
            "dataset": 'Customized("threatlang_data.py", "load")',
            "num_outputs": int(outputs),
            "start": 0,
            "end": int(count),
        },
        "specification": {
            "type": "lp",
            "robustness_type": "verified-acc",  # the label beats every other class
            "norm": float("inf") if linf else 2.0,
            "epsilon": float(radius),
        },
        "attack": {"pgd_order": "before" if linf else "skip"},  # its PGD is l-inf only
        "bab": {"timeout": float(timeout)},
    }
    problems = config_problems(config)
    if problems:
        raise AssertionError("threatlang wrote an invalid alpha-beta-CROWN config: " + problems[0])
    return config


def config_problems(config: dict, prefix: str = "") -> list[str]:
    """Keys alpha-beta-CROWN does not define (at commit `COMMIT`), values outside its choices,
    and values of the wrong type; empty when it loads the config as written."""
    out: list[str] = []
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            out += config_problems(value, path + ".")
            continue
        if path not in KEYS:
            out.append(f"{path} is not an alpha-beta-CROWN key (arguments.py at {COMMIT[:12]})")
            continue
        kind, options = KEYS[path]
        if not _typed(value, kind):
            out.append(f"{path} takes {kind}, got {value!r}")
        elif options is not None and value not in options:
            out.append(f"{path} is one of {', '.join(map(str, options))}, got {value!r}")
    return out


def _typed(value, kind: str) -> bool:
    if kind.startswith("list["):
        items = value if isinstance(value, list) else [value]
        return all(_typed(v, kind[5:-1]) for v in items)
    checks = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
    }
    return checks.get(kind, lambda v: True)(value)


def to_yaml(config: dict, indent: int = 0) -> str:
    """Block-style YAML of nested mappings of scalars and flat lists (JSON scalars are YAML;
    infinity is `.inf`), so the export needs no YAML library."""
    lines = []
    for key, value in config.items():
        pad = "  " * indent
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:\n{to_yaml(value, indent + 1)}")
        elif isinstance(value, list):
            lines.append(f"{pad}{key}: [{', '.join(_scalar(v) for v in value)}]\n")
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}\n")
    return "".join(lines)


def _scalar(value) -> str:
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return ".inf" if value > 0 else "-.inf"
    return json.dumps(value)


def export_abcrown(
    spec: Spec,
    out_dir: str | Path,
    *,
    weights: str | Path | None = None,
    limit: int | None = None,
    allow_code: bool = False,
) -> AbcrownExport:
    from ..data import load_dataset

    threat = _refuse(spec)
    splits = load_dataset(spec.data, spec.seed)
    test = splits.test.take(limit) if limit is not None else splits.test
    shape = tuple(test.x.shape[1:])
    low, high = (spec.domain.low, spec.domain.high) if spec.domain else (0.0, 1.0)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{spec.name}.onnx"
    outputs = write_model(spec, onnx_path, shape, splits.num_classes, weights, allow_code)
    data = out / "data.npz"
    np.savez(data, x=test.x, y=test.y, low=low, high=high)
    (out / "threatlang_data.py").write_text(LOADER)
    timeout = next(
        (a.time_limit for a in spec.actions if isinstance(a, Certify) and a.time_limit),
        DEFAULT_TIMEOUT,
    )
    configs = []
    for radius in threat.radii:
        path = out / f"{spec.name}_eps{radius:g}.yaml"
        config = abcrown_config(threat, radius, onnx_path, shape, outputs, len(test.y), timeout)
        header = (
            f"# alpha-beta-CROWN config written by threatlang: spec {spec.name}, "
            f"{threat.norm.value} ball\n# of radius {radius!r} around each of {len(test.y)} test "
            f"examples, label unchanged.\n# Run: python abcrown.py --config {path}\n"
        )
        path.write_text(header + to_yaml(config))
        configs.append(path)
    return AbcrownExport(tuple(configs), onnx_path, data)
