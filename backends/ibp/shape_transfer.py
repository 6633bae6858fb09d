"""Shape transfer (§2.5.3, Table 2.4): certify one model against each patch shape separately.

A model certificate-trained on squares is certified against other shapes of (about) the same
pixel count. Shapes are grouped by kind (square, rectangle, line, diamond, parallelogram,
mask); within a kind the *worst* certified accuracy is reported, as the chapter does for its
several rectangles.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from torch import Tensor, nn

from .certify import CertifyConfig, Outcome, certify_patches
from .patches import Locations, MaskRows, PatchThreat


@attrs.frozen
class NamedShape:
    kind: str  # "square", "rectangle", ...
    name: str  # e.g. "rectangle(2, 8)"
    mask: MaskRows

    @property
    def pixels(self) -> int:
        return sum(sum(r) for r in self.mask)


@attrs.frozen
class ShapeCertificate:
    shape: NamedShape
    certified: float  # fraction of images certified
    unsupported: int  # images the engine could not bound (counted as not certified)


@attrs.frozen
class KindRow:
    """One cell of Table 2.4: the worst shape of a kind."""

    kind: str
    worst: ShapeCertificate
    shapes: tuple[ShapeCertificate, ...]


def certify_shapes(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    shapes: Sequence[NamedShape],
    locations: Locations = Locations(),
    low: float = 0.0,
    high: float = 1.0,
    cfg: CertifyConfig = CertifyConfig(),
) -> list[ShapeCertificate]:
    """Certified accuracy of ``model`` against each shape on its own (all its placements)."""
    out = []
    for shape in shapes:
        threat = PatchThreat((shape.mask,), locations, low, high)
        certs = certify_patches(model, x, y, threat, cfg)
        ok = sum(c.outcome is Outcome.CERTIFIED for c in certs)
        bad = sum(c.outcome is Outcome.UNSUPPORTED for c in certs)
        out.append(ShapeCertificate(shape, ok / max(1, len(certs)), bad))
    return out


def by_kind(results: Sequence[ShapeCertificate]) -> list[KindRow]:
    """Group per kind (in first-seen order) and keep the worst certified accuracy."""
    kinds: dict[str, list[ShapeCertificate]] = {}
    for r in results:
        kinds.setdefault(r.shape.kind, []).append(r)
    return [
        KindRow(kind, min(rs, key=lambda r: r.certified), tuple(rs)) for kind, rs in kinds.items()
    ]
