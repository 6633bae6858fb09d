"""Syntax and semantic errors: file:line:col, all at once, sorted, with what was expected."""

from __future__ import annotations

import pytest

import threatlang
from threatlang import ir
from threatlang.errors import SpecError, render

BAD = """spec bad {
  model small_cnn
  data digits
  threat patch {
    shape square(9)
    shape hexagon(3)
    locations stride(0)
  }
  require label_unchanged
  train all_patch { epochs 0 }
  certify ibp { time_limit 60 }
}
"""


def errors(text: str) -> list[tuple[int, int, str]]:
    with pytest.raises(SpecError) as info:
        threatlang.parse(text, file="t.threat")
    return [(d.span.line, d.span.column, d.message) for d in info.value.diagnostics]


def test_all_semantic_errors_are_reported_sorted():
    found = errors(BAD)
    assert found == sorted(found)
    messages = " | ".join(m for _, _, m in found)
    assert "unknown shape 'hexagon'" in messages
    assert "k must be >= 1" in messages
    assert "epochs must be >= 1" in messages
    assert "duration" in messages
    assert [(line, col) for line, col, _ in found][:2] == [(6, 11), (7, 15)]


def test_patch_larger_than_the_input_points_at_the_shape():
    text = (
        BAD.replace("    shape hexagon(3)\n", "")
        .replace("stride(0)", "all")
        .replace("epochs 0", "epochs 2")
        .replace("time_limit 60", "")
    )
    assert errors(text) == [(5, 11, "patch 9x9 is larger than the 8x8 input")]


@pytest.mark.parametrize(
    "snippet, expected",
    [
        (
            "threat l2_ball { radius -0.5 }\n  require label_unchanged\n  certify ibp",
            "must be >= 0",
        ),
        (
            "threat l2_ball { radius 0.5 }\n  require label_unchanged\n  smooth median { sigma 0 }",
            "sigma must be > 0",
        ),
        (
            "threat l2_ball { radius 0.5 }\n  require label_unchanged\n  smooth median { sigma 1, confidence 1.5 }",
            "strictly between 0 and 1",
        ),
        (
            "threat l2_ball { radius 0.5 }\n  require label_unchanged\n  smooth percentile { sigma 1, percentile 0 }",
            "strictly between 0 and 1",
        ),
        (
            "threat bid_support { agents 0, items 1 }\n  require regret_at_most(0.1)\n  certify mip",
            "agents must be >= 1",
        ),
        (
            "threat patch { shape square(2) }\n  require label_unchanged\n  smooth median { sigma 1 }",
            "does not admit `smooth median`",
        ),
        (
            "threat patch { shape square(2) }\n  require regret_at_most(0.1)\n  certify ibp",
            "cannot require regret_at_most",
        ),
        (
            "threat pyramid { scales [3], multipliers [1], radius 0.1 }\n  attack pgd",
            "pyramid scale 3 does not divide",
        ),
        ("threat patch { shape circle(2) }\n  attack pgd", "unknown shape 'circle'"),
        (
            "threat patch { shape square(2), locations [(7, 7)] }\n  attack pgd",
            "leaves the 8x8 input",
        ),
    ],
)
def test_semantic_errors(snippet, expected):
    text = f'spec s {{\n  model state_dict("w.pt") {{ arch small_cnn }}\n  data digits\n  {snippet}\n}}\n'
    messages = [m for _, _, m in errors(text)]
    assert any(expected in m for m in messages), messages


def test_missing_model_and_data_are_errors():
    messages = [
        m for _, _, m in errors("spec s {\n  threat patch { shape square(2) }\n  attack pgd\n}\n")
    ]
    assert any("no model reference" in m for m in messages)
    assert any("no data reference" in m for m in messages)


def test_syntax_error_names_position_and_expectation():
    with pytest.raises(SpecError) as info:
        threatlang.parse("spec s {\n  model = small_cnn\n}\n", file="x.threat")
    (d,) = info.value.diagnostics
    assert (d.span.line, d.span.column) == (2, 9)
    assert "unexpected '='" in d.message and "a name" in d.expected
    shown = render(d, "spec s {\n  model = small_cnn\n}\n")
    assert shown.splitlines()[0].startswith("x.threat:2:9: error:")
    assert shown.splitlines()[-1].strip() == "^"


def test_unclosed_block_is_a_syntax_error_at_end_of_file():
    with pytest.raises(SpecError) as info:
        threatlang.parse("spec s {\n  model small_cnn\n")
    assert "end of file" in info.value.diagnostics[0].message


def test_hand_built_ir_is_validated_the_same_way():
    with pytest.raises(ValueError, match="sigma"):
        ir.Smooth("median", sigma=-1.0)
    with pytest.raises(ValueError, match="n: must be >= 1"):
        ir.Square(0)
    with pytest.raises(ValueError, match="one multiplier per scale"):
        ir.Pyramid(scales=[4, 2], multipliers=[1.0], radius=0.1)
    spec = ir.Spec(
        "x",
        model=ir.ModelRef("builtin", "small_cnn"),
        data=ir.DataRef("digits"),
        threat=ir.PatchSet([ir.Square(20)]),
        require=ir.LabelUnchanged(),
        actions=[ir.Train("all_patch"), ir.Certify("ibp")],
    )
    with pytest.raises(SpecError, match="larger than the 8x8 input"):
        threatlang.validate(spec)
