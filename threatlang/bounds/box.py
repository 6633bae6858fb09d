"""Interval boxes in centre/radius form, the representation IBP propagates (eqs. 2.5-2.8)."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class Box(NamedTuple):
    """Elementwise interval ``[centre - radius, centre + radius]``; ``radius >= 0``.

    Centre/radius form makes affine layers one matmul each for the centre (with ``W``) and
    the radius (with ``|W|``), instead of two mixed-sign products for lower/upper bounds.
    """

    centre: Tensor
    radius: Tensor

    @property
    def lo(self) -> Tensor:
        return self.centre - self.radius

    @property
    def hi(self) -> Tensor:
        return self.centre + self.radius

    @staticmethod
    def from_bounds(lo: Tensor, hi: Tensor) -> Box:
        return Box((hi + lo) * 0.5, (hi - lo) * 0.5)

    @staticmethod
    def point(x: Tensor) -> Box:
        return Box(x, torch.zeros_like(x))

    def reshape(self, *shape: int) -> Box:
        return Box(self.centre.reshape(*shape), self.radius.reshape(*shape))

    def contains(self, x: Tensor, tol: float = 1e-5) -> Tensor:
        """Boolean per row: every coordinate of ``x`` lies in the box (up to ``tol``)."""
        ok = (x >= self.lo - tol) & (x <= self.hi + tol)
        return ok.reshape(ok.shape[0], -1).all(dim=1)
