"""Parsing every shipped spec, units, spans, and the JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import threatlang
from threatlang import ir
from threatlang.serialize import document, load_document

SPECS = sorted((Path(__file__).parents[2] / "specs").glob("*.threat"))


def test_there_is_a_spec_per_family():
    families = set()
    for path in SPECS:
        for spec in threatlang.load_all(path):
            families.add(type(spec.threat).__name__ if spec.threat else None)
            if isinstance(spec.threat, ir.LpBall):
                families.add(spec.threat.target)
    assert {
        "PatchSet",
        "LpBall",
        "BidSupport",
        "Pyramid",
        ir.Target.INPUT,
        ir.Target.PARAMETERS,
    } <= families


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_spec_parses_checks_and_round_trips_through_json(path):
    specs = threatlang.load_all(path)
    assert specs
    text = json.dumps(document(specs))
    again = load_document(json.loads(text))
    assert again == specs
    # spans survive the round trip too (they are excluded from equality, so compare them)
    assert [s.span for s in again] == [s.span for s in specs]


QUICK = """threatlang 1
spec q {
  model small_cnn
  data digits { test_limit 30 }
  threat patch {
    shape square(2)
    shape line(3, vertical)
    locations [(0, 0), (2, 3)]
    values [0, 1]
  }
  require label_unchanged
  train random_patch(5) { epochs 3, lr 1e-3, warmup 1 }
  certify crown { time_limit 2min, threads 1, chunk 64, engine ours }
}
"""


def test_units_enums_tuples_and_options():
    spec = threatlang.parse(QUICK)
    assert spec.threat.shapes == (ir.Square(2), ir.Line(3, ir.Orientation.VERTICAL))
    assert spec.threat.locations == ir.Explicit(((0, 0), (2, 3)))
    train, certify = spec.actions
    assert train.strategy == "random_patch" and train.k == 5 and train.lr == 1e-3
    assert certify.method == "crown" and certify.time_limit == 120.0 and certify.threads == 1
    assert certify.options == (ir.Option("chunk", 64), ir.Option("engine", "ours"))
    assert isinstance(spec.threat.shapes, tuple)
    hash(spec)  # frozen, tuples all the way down


def test_fraction_percent_and_sample_units():
    text = """spec s {
      model scene_detector
      data scenes
      threat l2_ball { radius 8/255 }
      require iou_at_least(0.5)
      train standard { epochs 1 }
      smooth median { sigma 0.25, samples 2000 samples, confidence 99.9% }
    }"""
    spec = threatlang.parse(text)
    assert spec.threat.radii == (8 / 255,)
    smooth = spec.actions[-1]
    assert smooth.samples == 2000 and smooth.confidence == pytest.approx(0.999)


def test_spans_point_at_the_source_and_do_not_affect_equality():
    spec = threatlang.parse(QUICK, file="q.threat")
    square = spec.threat.shapes[0]
    assert (square.span.file, square.span.line, square.span.column) == ("q.threat", 6, 11)
    assert square == ir.Square(2)  # hand-built node without a span
    moved = threatlang.parse("\n\n" + QUICK.replace("threatlang 1\n", ""))
    assert moved == threatlang.parse(QUICK)


def test_multi_spec_files_need_a_name():
    text = QUICK + QUICK.replace("spec q", "spec r").replace("threatlang 1\n", "")
    with pytest.raises(threatlang.UsageError, match="holds 2 specs"):
        threatlang.parse(text)
    assert threatlang.parse(text, name="r").name == "r"


def test_shape_masks_have_the_promised_pixel_counts():
    assert ir.pixel_count(ir.Diamond(25)) == 25
    assert ir.mask_size(ir.Diamond(25)) == (7, 7)
    assert ir.pixel_count(ir.Diamond(16)) == 16
    assert ir.pixel_count(ir.Parallelogram(4, 4)) == 16 and ir.mask_size(
        ir.Parallelogram(4, 4)
    ) == (4, 7)
    assert ir.Line(3, "antidiagonal").mask() == (
        (False, False, True),
        (False, True, False),
        (True, False, False),
    )
    assert ir.Mask(("#.", ".#")).mask() == ((True, False), (False, True))


def test_location_sets_enumerate_positions():
    assert len(ir.AllLocations().positions((2, 2), (8, 8))) == 49
    assert ir.Corners().positions((2, 2), (8, 8)) == ((0, 0), (0, 6), (6, 0), (6, 6))
    assert len(ir.Stride(3).positions((2, 2), (8, 8))) == 9
