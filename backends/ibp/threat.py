"""IR threats to the compute modules' own geometry types."""

from __future__ import annotations

from threatlang.ir.threats import AllLocations, Corners, Explicit, PatchSet, Stride

from .patches import LocationKind, Locations, PatchThreat, square


def patch_threat(t: PatchSet, train_square: int | None = None) -> PatchThreat:
    """The spec's patch set; with ``train_square`` the same locations for square(n) patches."""
    loc = t.locations
    if isinstance(loc, AllLocations):
        locs = Locations(LocationKind.ALL)
    elif isinstance(loc, Corners):
        locs = Locations(LocationKind.CORNERS)
    elif isinstance(loc, Stride):
        locs = Locations(LocationKind.STRIDE, stride=loc.k)
    elif isinstance(loc, Explicit):
        locs = Locations(LocationKind.EXPLICIT, points=loc.points)
    else:  # pragma: no cover - the IR's union is closed
        raise TypeError(f"unknown location set {loc!r}")
    masks = (square(train_square),) if train_square else tuple(s.mask() for s in t.shapes)
    return PatchThreat(masks, locs, t.values.low, t.values.high)
