"""A union of input boxes (`threat boxes { box {...} box {...} }`, VNN-LIB's disjunctive input
constraints such as ACAS Xu property 6) is one spec with one verdict: holds only when every box
holds, violated when any box is; malformed unions are refused with the field named."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from threatlang.api import run  # noqa: E402
from threatlang.errors import SpecError  # noqa: E402
from threatlang.ir.threats import BoxUnion  # noqa: E402
from threatlang.parse import parse  # noqa: E402

from .helpers import grid_outputs, random_net  # noqa: E402

SPEC = """threatlang 1
spec union {{
  model onnx("{onnx}")
  threat boxes {{
    box {{ bounds [(-1, 0), (-1, 1)] }}
    box {{ bounds [(0.5, 1), (-1, 1)] }}
  }}
  require outputs {{
    linear "y[0] - y[1] <= {t!r}"
  }}
  certify bab {{ time_limit 30s }}
}}
"""


@pytest.fixture
def net_and_maxima(tmp_path):
    from threatlang.interop.onnx_export import export_onnx

    net = random_net(0)
    export_onnx(net, (2,), tmp_path / "net.onnx")
    maxima = []
    for lo, hi in (([-1, -1], [0, 1]), ([0.5, -1], [1, 1])):
        y = grid_outputs(net, np.array(lo, float), np.array(hi, float), 201)
        maxima.append(float((y[:, 0] - y[:, 1]).max()))
    return tmp_path / "net.onnx", maxima


def test_union_holds_only_when_every_box_holds(net_and_maxima, tmp_path):
    onnx, (m0, m1) = net_and_maxima
    low, high = sorted((m0, m1))
    between = (low + high) / 2  # above one box's maximum, below the other's
    for t, expect in ((high + 0.05, "holds"), (between, "violated")):
        spec = parse(SPEC.format(onnx=onnx, t=t))
        assert isinstance(spec.threat, BoxUnion)
        result = run(spec, output=tmp_path / f"r{t}", quiet=True)
        assert result.summary.metrics["verdict"] == expect
        assert [r.id for r in result.records] == ["union@box0", "union@box1"]


@pytest.mark.parametrize(
    ("boxes", "message"),
    [
        ("box { bounds [(0, 1)] }", "at least two"),
        ("box { bounds [(0, 1)] }\n    box { bounds [(0, 1), (0, 1)] }", "different dimensions"),
        ("box [0, 1]\n    box { bounds [(0, 1)] }", "is a block"),
    ],
)
def test_malformed_unions_are_refused(boxes, message):
    text = f"""threatlang 1
spec u {{
  model onnx("net.onnx")
  threat boxes {{
    {boxes}
  }}
  require outputs {{ linear "y[0] <= 1" }}
  certify bab
}}
"""
    with pytest.raises(SpecError) as err:
        parse(text)
    assert message in str(err.value)
