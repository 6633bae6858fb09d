"""Marabou as a second complete engine: on the same ONNX files, boxes and properties, it and our
branch and bound must never disagree (a disagreement means one of them, or our ONNX
conversion, is wrong); `engine marabou` without maraboupy is refused in one sentence."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from threatlang.backends.bab.adapter import EngineNet  # noqa: E402
from threatlang.backends.bab.config import BabOptions  # noqa: E402
from threatlang.backends.bab.confirm import Original  # noqa: E402
from threatlang.backends.bab.problem import build_problem  # noqa: E402
from threatlang.backends.bab.search import solve  # noqa: E402
from threatlang.ir.properties import Disjunction, LinearConstraint, OutputsSatisfy  # noqa: E402

from .helpers import mip_max, random_net  # noqa: E402


def _properties(net, lo, hi):
    """Thresholds either side of the exact maxima, and a disjunction of two of them."""
    top = mip_max(net, lo, hi, [1.0, -1.0])
    out2 = mip_max(net, lo, hi, [0.0, 1.0])
    props = []
    for t in (top + 0.05, top - 0.05, top + 0.005):
        props.append(OutputsSatisfy(LinearConstraint((1.0, -1.0), "<=", t)))
    props.append(
        OutputsSatisfy(
            Disjunction(
                (
                    LinearConstraint((1.0, -1.0), "<=", top - 0.2),
                    LinearConstraint((0.0, 1.0), "<=", out2 - 0.1),
                )
            )
        )
    )
    return props


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_marabou_and_our_search_agree(seed, tmp_path):
    pytest.importorskip("maraboupy")
    pytest.importorskip("highspy")
    from threatlang.backends.bab.marabou import solve_marabou
    from threatlang.interop.onnx_export import export_onnx

    net = random_net(seed, (3, 16, 16, 2))
    onnx = tmp_path / "net.onnx"
    export_onnx(net, (3,), onnx)
    lo, hi = -np.ones(3), np.ones(3)
    engine = EngineNet(net, (3,))
    original = Original((3,), onnx=str(onnx))
    decided = 0
    for prop in _properties(net, lo, hi):
        problem = build_problem(prop, engine.outputs)
        ours = solve(engine, problem, original, lo, hi, BabOptions(time_limit=30.0))
        theirs = solve_marabou(str(onnx), problem, original, lo, hi, 30.0)
        if "unknown" not in (ours.verdict, theirs.verdict):
            assert ours.verdict == theirs.verdict, (prop, ours, theirs)
            decided += 1
    assert decided >= 3


def test_engine_marabou_without_maraboupy_is_refused_in_one_sentence(monkeypatch, tmp_path):
    import importlib.util

    from threatlang.compile import select_backend
    from threatlang.errors import CapabilityError
    from threatlang.parse import parse

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "maraboupy" else real(name, *a),
    )
    spec = parse(
        """threatlang 1
spec m {
  model onnx("net.onnx")
  threat box { bounds [(-1, 1)] }
  require outputs { linear "y[0] <= 1" }
  certify bab { engine marabou }
}
"""
    )
    with pytest.raises(CapabilityError) as err:
        select_backend(spec)
    assert "pip install 'threatlang[marabou]'" in str(err.value.diagnostics)
