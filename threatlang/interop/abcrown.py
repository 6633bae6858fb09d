"""`threatlang compile SPEC --emit abcrown --output DIR`: hand an Lp-ball spec to the complete
verifier alpha-beta-CROWN. One YAML config per radius, the ONNX network, the test examples as
`data.npz`, and a tiny data loader module in alpha-beta-CROWN's `Customized(...)` protocol:

    PYTHONPATH=DIR python abcrown.py --config DIR/SPEC_eps0.1.yaml

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
from .boxes import refuse_preprocessing
from .export import DEFAULT_TIMEOUT, _write_model

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
    outputs = _write_model(spec, onnx_path, shape, splits.num_classes, weights, allow_code)
    data = out / "data.npz"
    np.savez(data, x=test.x, y=test.y, low=low, high=high)
    (out / "threatlang_data.py").write_text(LOADER)
    timeout = next(
        (a.time_limit for a in spec.actions if isinstance(a, Certify) and a.time_limit),
        DEFAULT_TIMEOUT,
    )
    norm = ".inf" if threat.norm is Norm.LINF else "2"
    attack = "before" if threat.norm is Norm.LINF else "skip"  # its PGD is linf only
    configs = []
    for radius in threat.radii:
        path = out / f"{spec.name}_eps{radius:g}.yaml"
        path.write_text(
            f"""# alpha-beta-CROWN config written by threatlang: spec {spec.name}, {threat.norm.value} ball
# of radius {radius!r} around each of {len(test.y)} test examples, label unchanged.
# Run: PYTHONPATH={out} python abcrown.py --config {path}
general:
  device: cpu
  mode: verified-acc
  complete_verifier: bab
model:
  onnx_path: {json.dumps(str(onnx_path))}
  input_shape: [-1, {", ".join(str(d) for d in shape)}]
data:
  dataset: Customized("threatlang_data", "load")
  num_outputs: {outputs}
  start: 0
  end: {len(test.y)}
specification:
  type: lp
  norm: {norm}
  epsilon: {radius!r}
attack:
  pgd_order: {attack}
bab:
  timeout: {timeout:g}
"""
        )
        configs.append(path)
    return AbcrownExport(tuple(configs), onnx_path, data)
