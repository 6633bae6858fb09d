"""Shape transfer: each shape certified on its own; the worst shape of a kind is reported."""

import torch
from torch import nn

from threatlang.backends.ibp.certify import Outcome, certify_patches
from threatlang.backends.ibp.patches import PatchThreat
from threatlang.backends.ibp.shape_transfer import NamedShape, by_kind, certify_shapes
from threatlang.ir import Diamond, Line, Rectangle, Square


def _named(shape) -> NamedShape:
    return NamedShape(type(shape).__name__.lower(), repr(shape), shape.mask())


def test_each_shape_matches_its_own_certificate_and_worst_rectangle_is_kept():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(36, 8), nn.ReLU(), nn.Linear(8, 3))
    with torch.no_grad():
        model[1].weight.mul_(0.2)
    x = torch.rand(20, 1, 6, 6)
    y = model(x).argmax(1)
    shapes = [_named(s) for s in (Square(2), Rectangle(1, 4), Rectangle(4, 1), Line(4), Diamond(4))]
    results = certify_shapes(model, x, y, shapes)
    for r in results:
        certs = certify_patches(model, x, y, PatchThreat((r.shape.mask,)))
        ok = sum(c.outcome is Outcome.CERTIFIED for c in certs) / 20
        assert r.certified == ok and r.shape.pixels == 4
    rows = by_kind(results)
    assert [r.kind for r in rows] == ["square", "rectangle", "line", "diamond"]
    rect = rows[1]
    assert len(rect.shapes) == 2
    assert rect.worst.certified == min(s.certified for s in rect.shapes)
