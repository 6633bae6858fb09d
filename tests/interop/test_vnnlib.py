"""VNN-LIB out and back in: spec → VNN-LIB → spec gives the same box threat; the files parse
with the `vnnlib` package (2.0) and with our reader (both dialects); what is not a box is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from threatlang.cli import main  # noqa: E402
from threatlang.errors import UsageError  # noqa: E402
from threatlang.interop.boxes import patch_boxes, refuse_unless_boxes  # noqa: E402
from threatlang.interop.export import export_vnnlib  # noqa: E402
from threatlang.interop.vnnlib import unsafe_label  # noqa: E402
from threatlang.interop.vnnlib_read import read  # noqa: E402
from threatlang.parse import load, load_all, parse  # noqa: E402

ROOT = Path(__file__).parents[2]

SPECS = """threatlang 1
spec patches {
  model onnx("m.onnx")
  data digits { test_limit 2 }
  threat patch {
    shape square(2)
    shape line(3, diagonal)
    locations all
    values [0, 1]
  }
  require label_unchanged
  certify ibp
}
spec strided {
  model onnx("m.onnx")
  data digits { test_limit 2 }
  threat patch {
    shape rectangle(2, 3)
    locations stride(2)
    values [0.25, 0.75]
  }
  require label_unchanged
  certify ibp
}
spec balls {
  model onnx("m.onnx")
  data digits { test_limit 2 }
  threat linf_ball { radii [0.01, 0.05] }
  require label_unchanged
  certify ibp
}
"""


@pytest.fixture
def specs(tmp_path):
    from torch import nn

    from threatlang.interop.onnx_export import export_onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, 1, 1), nn.ReLU(), nn.Flatten(), nn.Linear(192, 10))
    export_onnx(model.eval(), (1, 8, 8), tmp_path / "m.onnx")
    (tmp_path / "s.threat").write_text(SPECS)
    return {s.name: s for s in load_all(tmp_path / "s.threat")}


@pytest.mark.parametrize(
    "name, split",
    [("patches", False), ("strided", False), ("strided", True), ("balls", False)],
)
def test_spec_to_vnnlib_to_spec_keeps_the_box_threat(specs, tmp_path, name, split):
    spec = specs[name]
    out = tmp_path / "bench"
    flags = ["--spec", name, "--emit", "vnnlib", "-o", str(out)] + (["--split"] if split else [])
    assert main(["compile", str(tmp_path / "s.threat"), *flags]) == 0
    rows = (out / "instances.csv").read_text().splitlines()
    expected = {"balls": 2 * 2, "patches": 2}.get(name, 2 * (12 if split else 1))
    assert len(rows) == expected and all(r.endswith(",60") for r in rows)
    back = tmp_path / "back.threat"
    assert main(["import-vnnlib", str(out / "instances.csv"), "-o", str(back), "--recognise"]) == 0
    imported = load(back)
    assert imported.threat == spec.threat  # attrs equality: same node, same fields (spans aside)
    data = np.load(back.with_suffix(".npz"))
    from threatlang.data import load_dataset

    test = load_dataset(spec.data, spec.seed).test
    np.testing.assert_array_equal(data["y_test"], test.y)
    if name != "balls":  # a patch pins every pixel it does not cover somewhere
        np.testing.assert_array_equal(data["x_test"], test.x)
    else:
        np.testing.assert_allclose(data["x_test"], test.x, atol=1e-7)
    # and exporting the imported spec gives the same properties, byte for byte
    again = tmp_path / "again"
    more = ["--split"] if split else []
    assert main(["compile", str(back), "--emit", "vnnlib", "-o", str(again), *more]) == 0
    first = sorted((out / "vnnlib").iterdir())
    second = sorted((again / "vnnlib").iterdir())
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert a.read_text().split("\n", 1)[1] == b.read_text().split("\n", 1)[1]


def test_patch_property_is_the_union_of_placements(specs, tmp_path):
    spec = specs["patches"]
    result = export_vnnlib(spec, tmp_path / "b", limit=1)
    query = read(result.properties[0].read_text(), (1, 8, 8))
    assert len(query.boxes) == 7 * 7 + 6 * 6  # square(2) and line(3, diagonal) at every position
    free = [(b.lo != b.hi).sum() for b in query.boxes]
    assert sorted(set(free)) == [3, 4]
    label = unsafe_label(query)
    assert label is not None and len(query.unsafe) == 9


def test_version_2_parses_with_the_vnnlib_package(specs, tmp_path):
    pytest.importorskip("vnnlib")
    import vnnlib
    import vnnlib.compat

    spec = specs["strided"]
    v1 = export_vnnlib(spec, tmp_path / "v1", limit=1)
    v2 = export_vnnlib(spec, tmp_path / "v2", limit=1, version=2)
    ours = read(v1.properties[0].read_text(), (1, 8, 8))
    cases = vnnlib.compat.transform(vnnlib.parse_query_file(str(v2.properties[0])))
    theirs = {tuple(map(tuple, case.input_box)) for case in cases}
    assert theirs == {tuple(zip(b.lo + 0.0, b.hi + 0.0, strict=True)) for b in ours.boxes}
    for case in cases:  # every box carries the whole unsafe set: Y_j >= Y_label for j != label
        assert len(case.output_constraints) == 9
    again = read(v2.properties[0].read_text())
    assert again.input_shape == (1, 8, 8)
    assert {b.lo.tobytes() + b.hi.tobytes() for b in again.boxes} == {
        b.lo.tobytes() + b.hi.tobytes() for b in ours.boxes
    }
    assert unsafe_label(again) == unsafe_label(ours)


def test_reader_on_a_hand_written_vnncomp_file():
    text = """; a VNN-COMP style property
(declare-const X_0 Real)
(declare-const X_1 Real)
(declare-const Y_0 Real)
(declare-const Y_1 Real)
(declare-const Y_2 Real)
(assert (<= X_0 0.5))
(assert (>= X_0 -0.5))
(assert (or (and (<= X_1 1) (>= X_1 0.75)) (and (<= X_1 0.25) (>= X_1 0))))
(assert (or (and (<= Y_1 Y_0)) (and (> Y_2 Y_1) (<= (+ Y_0 (* 2 Y_2)) 3.5))))
"""
    q = read(text)
    assert q.input_shape == (2,) and q.num_outputs == 3
    assert sorted((b.lo.tolist(), b.hi.tolist()) for b in q.boxes) == [
        ([-0.5, 0.0], [0.5, 0.25]),
        ([-0.5, 0.75], [0.5, 1.0]),
    ]
    assert len(q.unsafe) == 2 and len(q.unsafe[1]) == 2
    assert unsafe_label(q) is None
    with pytest.raises(UsageError, match="not a box"):
        read(text.replace("(assert (<= X_0 0.5))", "(assert (<= (+ X_0 X_1) 0.5))"))


@pytest.mark.parametrize(
    "file, message",
    [
        ("detection_smoothing.threat", "l2 ball"),
        ("watermark.threat", "parameters"),
        ("auction_2x2.threat", "BidSupport"),
        ("vit_upat.threat", "Pyramid"),
    ],
)
def test_threats_that_are_not_boxes_are_refused(file, message):
    spec = load_all(ROOT / "specs" / file)[0]
    with pytest.raises(UsageError, match=message):
        refuse_unless_boxes(spec)


def test_l2_ball_and_smoothing_are_refused_not_boxed():
    text = (
        'spec s {\n model onnx("m.onnx")\n data digits\n threat l2_ball { radius 0.5 }\n'
        " require label_unchanged\n certify crown\n}\n"
    )
    with pytest.raises(UsageError, match="l2 ball, which is not a box"):
        refuse_unless_boxes(parse(text))
    smoothed = text.replace("l2_ball", "linf_ball").replace(
        "certify crown", "smooth classify { sigma 0.25 }"
    )
    with pytest.raises(UsageError, match="smoothed classifier"):
        refuse_unless_boxes(parse(smoothed))


def test_builtin_model_needs_weights(archs, tmp_path):
    spec = parse(
        "spec t {\n model tiny\n data digits { test_limit 1 }\n threat linf_ball { radius 0.1 }\n"
        " require label_unchanged\n train standard\n certify ibp\n}\n"
    )
    with pytest.raises(UsageError, match="--weights"):
        export_vnnlib(spec, tmp_path / "x")
    torch.save(archs.tiny((1, 8, 8), 10).state_dict(), tmp_path / "w.pt")
    result = export_vnnlib(spec, tmp_path / "x", weights=tmp_path / "w.pt")
    assert len(result.properties) == 1 and result.onnx.exists()


def test_patch_boxes_free_every_channel():
    from threatlang.ir import PatchSet, Square

    x = np.zeros((3, 4, 4), dtype=np.float32)
    boxes = patch_boxes(x, PatchSet((Square(2),)))
    assert len(boxes) == 9
    free = (boxes[0].lo != boxes[0].hi).reshape(3, 4, 4)
    assert (free == free[0]).all() and free[0].sum() == 4


def test_import_of_a_flat_network_with_two_radii(tmp_path):
    """A VNN-COMP style benchmark written by hand: a 5-input network, one box per radius."""
    from torch import nn

    from threatlang.interop.import_vnnlib import import_vnnlib
    from threatlang.interop.onnx_export import export_onnx
    from threatlang.interop.vnnlib import Box, Query, label_unsafe
    from threatlang.interop.vnnlib_write import write_v1

    export_onnx(
        nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3)).eval(), (5,), tmp_path / "f.onnx"
    )
    x = np.array([0.2, 0.5, 0.9, 0.3, 0.6])
    rows = []
    for i, eps in enumerate([0.1, 0.2]):
        query = Query((5,), 3, (Box(x - eps, x + eps),), label_unsafe(1, 3))
        (tmp_path / f"p{i}.vnnlib").write_text(write_v1(query))
        rows.append(f"f.onnx,p{i}.vnnlib,10")
    (tmp_path / "instances.csv").write_text("\n".join(rows) + "\n")
    spec = load(import_vnnlib(tmp_path / "instances.csv", tmp_path / "flat.threat", recognise=True))
    assert spec.threat.radii == (0.1, 0.2) and spec.domain.shape == (5,)
    data = np.load(tmp_path / "flat.npz")
    np.testing.assert_allclose(data["x_test"], [x], atol=1e-7)
    assert data["y_test"].tolist() == [1]


@pytest.mark.parametrize(
    "threat",
    [
        "patch { shape square(2)\n locations all }",
        "patch { shape rectangle(2, 3)\n shape diamond(5)\n locations stride(2)\n values [0.25, 0.75] }",
        "patch { shape line(3, antidiagonal)\n locations corners }",
    ],
)
def test_vnnlib_states_the_placements_the_ibp_backend_bounds(threat):
    """The exported union of boxes and the ibp backend's dense patch boxes free the same pixel
    sets to the same range: the complete verifier is asked exactly what ibp certifies."""
    pytest.importorskip("threatlang.backends.ibp.threat")
    from threatlang.backends.ibp.patches import dense_box, placements
    from threatlang.backends.ibp.threat import patch_threat

    spec = parse(
        f'spec s {{\n model onnx("m.onnx")\n data digits\n threat {threat}\n'
        " require label_unchanged\n certify ibp\n}\n"
    )
    x = np.random.default_rng(0).random((1, 8, 8)).astype(np.float32)
    ours = patch_boxes(x, spec.threat)
    ibp_threat = patch_threat(spec.threat)
    theirs = []
    for mask, offs in placements(ibp_threat, (8, 8)):
        box = dense_box(torch.from_numpy(x)[None], mask, offs, ibp_threat.low, ibp_threat.high)
        lo, hi = _bounds(box)
        theirs += list(
            zip(
                lo.reshape(len(lo), -1).double().numpy(),
                hi.reshape(len(hi), -1).double().numpy(),
                strict=True,
            )
        )

    def free_sets(pairs):
        return {frozenset(np.flatnonzero(np.abs(h - lo_) > 1e-6).tolist()) for lo_, h in pairs}

    assert free_sets([(b.lo, b.hi) for b in ours]) == free_sets(theirs)
    v = spec.threat.values
    for lo_, hi_ in theirs:
        free = np.abs(hi_ - lo_) > 1e-6
        np.testing.assert_allclose(lo_[free], v.low, atol=1e-6)
        np.testing.assert_allclose(hi_[free], v.high, atol=1e-6)
        np.testing.assert_allclose(lo_[~free], x.ravel()[~free], atol=1e-6)


def _bounds(box):
    for names in (("lower", "upper"), ("lo", "hi"), ("low", "high")):
        if hasattr(box, names[0]):
            return getattr(box, names[0]), getattr(box, names[1])
    raise AttributeError(f"unknown Box layout: {box}")


def test_preprocessing_defences_are_refused():
    """LGS runs before the network: an exported network without it states another property."""
    from threatlang.interop.abcrown import export_abcrown

    spec = parse(
        'spec s {\n model onnx("m.onnx")\n data digits\n preprocess lgs\n'
        " threat patch { shape square(2) }\n require label_unchanged\n certify ibp\n}\n"
    )
    with pytest.raises(UsageError, match="lgs defence before the network"):
        refuse_unless_boxes(spec)
    ball = parse(
        'spec b {\n model onnx("m.onnx")\n data digits\n preprocess dw\n'
        " threat linf_ball { radius 0.1 }\n require label_unchanged\n certify crown\n}\n"
    )
    with pytest.raises(UsageError, match="dw defence"):
        export_abcrown(ball, "unused")


def test_certificates_survive_the_round_trip(tmp_path):
    """Certify a spec with the ibp backend; export it to VNN-LIB, import it back, certify the
    imported spec with the imported ONNX network: the same statuses and margin bounds."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("threatlang.backends.ibp")

    import threatlang
    from threatlang.data import load_dataset
    from threatlang.interop.import_vnnlib import import_vnnlib
    from threatlang.interop.onnx_export import export_onnx
    from threatlang.models_io import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        balls = "spec balls" + SPECS.split("spec balls")[1]
        text = balls.replace("test_limit 2", "test_limit 6").replace("0.01, 0.05", "0.002, 0.02")
        (tmp_path / "s.threat").write_text(text)
        spec = load(tmp_path / "s.threat")
        model = _trained_mlp(load_dataset(spec.data, spec.seed).train)
        export_onnx(model, (1, 8, 8), tmp_path / "m.onnx")
        before = threatlang.run(spec, model=model, output=tmp_path / "a", quiet=True)
        export_vnnlib(spec, tmp_path / "bench")
        csv = tmp_path / "bench" / "instances.csv"
        back = load(import_vnnlib(csv, tmp_path / "b.threat", recognise=True))
        converted = load_model(back.model, (1, 8, 8), 10)
        after = threatlang.run(back, model=converted, output=tmp_path / "b", quiet=True)
    finally:
        torch.set_num_threads(threads)
    assert before.backend == after.backend == "ibp"
    assert [r.status for r in before.records] == [r.status for r in after.records]
    assert any(r.status.value == "certified" for r in before.records)
    for a, b in zip(before.records, after.records, strict=True):
        assert a.values["certified_at"] == b.values["certified_at"]
        np.testing.assert_allclose(a.values["margin_lower"], b.values["margin_lower"], atol=1e-4)


def _trained_mlp(train):
    """A few epochs of plain SGD on digits: accurate enough that small balls certify."""
    from torch import nn

    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        for idx in torch.randperm(len(x), generator=gen).split(64):
            model.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p -= 0.1 * p.grad
    return model.eval()
